"""Loopback servers the alerts are delivered to in the tests: a real SMTP server (aiosmtpd)
that insists on STARTTLS and a login, and an HTTP server that records webhook POSTs."""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from dicom_sync_dagster.sandbox import LOOPBACK, free_port

SMTP_USER, SMTP_PASSWORD = "alerts", "s3cret-Pa55"


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)  # who had logged in, per message

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.logins.append(session.auth_data.decode() if session.authenticated else "")
        return "250 OK"


def _authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


class SmtpServer:
    """STARTTLS required before AUTH, AUTH required before mail; a certificate of our test CA."""

    def __init__(self, certificate: str, key: str) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate, key)
        self.mailbox = Mailbox()
        self.context = context
        self.controller: Controller | None = None
        self.port = 0

    def start(self) -> SmtpServer:
        for _ in range(5):  # the port can be taken between free_port() and the bind
            self.port = free_port()
            controller = Controller(
                self.mailbox,
                hostname=LOOPBACK,
                port=self.port,
                tls_context=self.context,
                require_starttls=True,
                authenticator=_authenticate,
                auth_required=True,
                auth_require_tls=True,
            )
            try:
                controller.start()
            except OSError:
                continue
            self.controller = controller
            return self
        raise RuntimeError("no free port for the SMTP server")

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()


class WebhookServer:
    """Records the JSON body of every POST; answers 200 (or ``status``)."""

    def __init__(self, status: int = 200) -> None:
        self.posts: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with owner.arrived:
                    owner.posts.append({"path": self.path, "json": json.loads(body)})
                    owner.arrived.notify_all()
                self.send_response(owner.status)
                self.end_headers()
                self.wfile.write(b"1")

            def log_message(self, *args) -> None:
                pass

        self.status = status
        self.arrived = threading.Condition()
        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}/hooks/SECRET-TOKEN"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, seconds: float) -> list[dict]:
        """The posts, once there are ``count`` of them (or ``seconds`` have passed)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.posts) >= count, timeout=seconds)
            return list(self.posts)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
