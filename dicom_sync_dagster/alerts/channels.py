"""Delivering an alert: e-mail over SMTP (STARTTLS or SSL, with login) and a webhook (a JSON
POST in the shape Microsoft Teams or Slack accept, or plain JSON with a ``text`` field)."""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import urlsplit

from .settings import AlertSettings

TIMEOUT_SECONDS = 30
TEAMS_HOSTS = ("webhook.office.com", "logic.azure.com", "powerplatform.com", "powerautomate.com")
SLACK_HOSTS = ("hooks.slack.com",)


@dataclass(frozen=True)
class Alert:
    """One message. ``lines`` name route, node, AE and what happened; no patient data."""

    kind: str  # failing | recovered | series_failing | series_recovered | no_check | checks_back
    route: str
    title: str
    lines: list[str] = field(default_factory=list)
    url: str = ""

    def text(self) -> str:
        link = [f"Open in Dagster: {self.url}"] if self.url else []
        return "\n".join([self.title, "", *self.lines, *link])


class DeliveryFailed(RuntimeError):
    """A channel did not take the alert; the message names the channel, never a password."""


def _tls_context(settings: AlertSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.smtp_ca or None)


def send_email(settings: AlertSettings, alert: Alert) -> None:
    """Send ``alert`` to every ``email_to`` address."""
    message = EmailMessage()
    message["Subject"], message["From"] = alert.title, settings.email_from
    message["To"] = ", ".join(settings.email_to)
    message.set_content(alert.text())
    server = f"SMTP server {settings.smtp_host}:{settings.smtp_port}"
    try:
        smtp: smtplib.SMTP
        if settings.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=TIMEOUT_SECONDS,
                context=_tls_context(settings),
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_SECONDS)
        with smtp:
            if settings.smtp_security == "starttls":
                smtp.starttls(context=_tls_context(settings))
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        refused = f"login as {settings.smtp_user!r} refused ({exc.smtp_code})"
        raise DeliveryFailed(f"{server}: {refused}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(f"{server}: {exc}") from None


def webhook_format(settings: AlertSettings) -> str:
    """The payload shape: as set, or (``auto``) by the webhook's host."""
    if settings.webhook_format != "auto":
        return settings.webhook_format
    host = urlsplit(settings.webhook_url).hostname or ""
    if host.endswith(TEAMS_HOSTS):
        return "teams"
    return "slack" if host.endswith(SLACK_HOSTS) else "json"


def _slack_escaped(text: str) -> str:
    """Slack reads ``<...>`` as links and mentions (``<!channel>``): text from a PACS is
    escaped as Slack asks (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_payload(alert: Alert, shape: str) -> dict[str, object]:
    """Teams: an Adaptive Card message (Workflows and the older connectors take it); Slack:
    ``text`` with a link; json: ``text`` (Slack, Mattermost and Rocket.Chat read it) and the
    alert's fields."""
    if shape == "slack":
        link = f"\n<{alert.url}|Open in Dagster>" if alert.url else ""
        lines = "\n".join(_slack_escaped(line) for line in alert.lines)
        return {"text": f"*{_slack_escaped(alert.title)}*\n{lines}{link}"}
    if shape == "teams":
        body = [
            {"type": "TextBlock", "text": alert.title, "weight": "Bolder", "wrap": True},
            *({"type": "TextBlock", "text": line, "wrap": True} for line in alert.lines),
        ]
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": body,
            "actions": (
                [{"type": "Action.OpenUrl", "title": "Open in Dagster", "url": alert.url}]
                if alert.url
                else []
            ),
        }
        attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        return {"type": "message", "summary": alert.title, "attachments": [attachment]}
    return {
        "text": alert.text(),
        "event": alert.kind,
        "route": alert.route,
        "title": alert.title,
        "lines": alert.lines,
        "url": alert.url,
    }


def post_webhook(settings: AlertSettings, alert: Alert) -> None:
    payload = webhook_payload(alert, webhook_format(settings))
    request = urllib.request.Request(
        settings.webhook_url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    host = urlsplit(settings.webhook_url).netloc  # not the path: it may hold the secret
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"webhook at {host}: HTTP {exc.code} {exc.reason}") from None
    except OSError as exc:
        raise DeliveryFailed(f"webhook at {host}: {exc}") from None


def deliver(settings: AlertSettings, alert: Alert) -> tuple[int, list[str]]:
    """Every configured channel: how many took the alert, and why the others did not."""
    delivered, failures = 0, []
    channels = [(settings.email_to, send_email), (settings.webhook_url, post_webhook)]
    for configured, send in channels:
        if configured:
            try:
                send(settings, alert)
                delivered += 1
            except DeliveryFailed as exc:
                failures.append(str(exc))
    return delivered, failures
