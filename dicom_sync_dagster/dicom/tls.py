"""DICOM TLS for one node: the PEM files, the client SSLContext, and why a handshake failed."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from dataclasses import dataclass

from .errors import NodeUnreachable
from .node import DicomNode


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: ``ca`` verifies the server's certificate (TLS is on when a node has one);
    ``cert`` and ``key`` are our client certificate and its unencrypted key (both or neither)."""

    ca: str
    cert: str | None = None
    key: str | None = None


class TlsFileError(ValueError):
    """``field`` ("ca", "cert" or "key") of a :class:`TlsFiles` does not load."""

    def __init__(self, field: str, path: str, problem: str) -> None:
        super().__init__(f"TLS {field} file {path!r} {problem}")
        self.field = field
        self.path = path
        self.problem = problem


class TlsFailed(NodeUnreachable):
    """The TLS handshake failed: the server's certificate, our client certificate, or a peer
    that does not speak TLS. Retrying will not help until the configuration changes."""


class _EncryptedKey(Exception):
    pass


def _no_password() -> str:
    raise _EncryptedKey  # else OpenSSL would prompt on the terminal


def _ssl_text(exc: OSError) -> str:
    """'tlsv13 alert certificate required' from '[SSL: ...] tlsv13 ... (_ssl.c:2580)'."""
    text = str(exc.strerror or exc)
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", re.sub(r"^\[[^\]]*\]\s*", "", text)) or text


def ssl_context(files: TlsFiles) -> ssl.SSLContext:
    """A client context that trusts only ``files.ca`` and checks the server's host name;
    raises :class:`TlsFileError` naming the file that does not load."""
    for field in ("ca", "cert", "key"):
        path = getattr(files, field)
        if path is None:
            continue
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except FileNotFoundError:
            raise TlsFileError(field, path, "does not exist") from None
        except IsADirectoryError:
            raise TlsFileError(field, path, "is a directory, not a PEM file") from None
        except OSError as exc:
            raise TlsFileError(field, path, f"cannot be read ({exc.strerror or exc})") from None
    if (files.cert is None) != (files.key is None):
        field, path = ("cert", files.cert) if files.cert else ("key", files.key)
        raise TlsFileError(field, str(path), "needs its partner: give both cert and key")
    try:
        context = ssl.create_default_context(cafile=files.ca)
    except ssl.SSLError as exc:
        raise TlsFileError("ca", files.ca, f"holds no PEM certificate ({_ssl_text(exc)})") from None
    if files.cert and files.key:
        try:  # a certificate loads as a trust anchor; a key or junk does not
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=files.cert)
        except ssl.SSLError as exc:
            problem = f"holds no PEM certificate ({_ssl_text(exc)})"
            raise TlsFileError("cert", files.cert, problem) from None
        try:
            context.load_cert_chain(files.cert, files.key, password=_no_password)
        except _EncryptedKey:
            problem = "is an encrypted private key; give an unencrypted one"
            raise TlsFileError("key", files.key, problem) from None
        except ssl.SSLError as exc:
            if exc.reason == "KEY_VALUES_MISMATCH":
                problem = f"is not the private key of the certificate {files.cert!r}"
            else:
                problem = "holds no PEM private key"
                problem += f" ({_ssl_text(exc)})" if exc.reason else ""
            raise TlsFileError("key", files.key, problem) from None
    return context


def _describe(exc: OSError, ca: str) -> str:
    """What a failed handshake means, from the exception ``wrap_socket`` or ``recv`` raised."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = f"certificate verify failed: {exc.verify_message}"
        if "Hostname" not in str(exc.verify_message):
            message += f" (did the CA in {ca!r} sign the server's certificate?)"
        return message
    not_tls = "; does the server speak DICOM TLS on this port?"
    if isinstance(exc, TimeoutError):
        return "no answer to the TLS handshake" + not_tls
    if not isinstance(exc, ssl.SSLError):
        return f"the server broke off the handshake ({exc.strerror or exc})" + not_tls
    reason, text = exc.reason or "", _ssl_text(exc)
    if "CERTIFICATE_REQUIRED" in reason:
        return f"the server requires a client certificate ({text})"
    if "ALERT" in reason and ("CERTIFICATE" in reason or "UNKNOWN_CA" in reason):
        return f"the server refused our client certificate ({text})"
    if "ALERT" in reason:
        return f"the server refused the handshake ({text})"
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError) or "WRONG_VERSION" in reason:
        return f"the server broke off the handshake ({text})" + not_tls
    return text


def handshake_problem(node: DicomNode, context: ssl.SSLContext, timeout: float) -> str:
    """Why a TLS handshake with ``node`` fails, or '' when it does not (or TCP fails).

    pynetdicom only logs a failed handshake and reports an aborted association, so this
    tries one itself. With TLS 1.3 the server judges our certificate after the handshake:
    a refusal is an alert on the first read, which is awaited briefly."""
    try:
        raw = socket.create_connection((node.host, node.port), timeout=timeout)
    except OSError:
        return ""  # not a TLS matter
    try:
        with raw, context.wrap_socket(raw, server_hostname=node.host) as tls:
            tls.settimeout(min(timeout, 2.0))
            with contextlib.suppress(TimeoutError):  # silence: our certificate was accepted
                tls.recv(1)
    except OSError as exc:
        return _describe(exc, node.tls.ca if node.tls else "")
    return ""
