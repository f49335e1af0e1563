"""Alert settings: ``DICOM_SYNC_ALERT_*`` variables, or the ``alerts:`` block of the routes
file (its fields win; the variables stand in for fields it leaves out, e.g. the SMTP password,
which is better kept out of the file). Validated before any network traffic: every error names
the variable or field and the value (never a password's value)."""

from __future__ import annotations

import os
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..core.text import shorten
from ..routes import read_yaml, routes_file
from ..settings import ConfigError, check_host, check_port

PREFIX = "DICOM_SYNC_ALERT_"
FIELDS = {  # field of the alerts: block -> its environment variable
    name: PREFIX + name.upper()
    for name in (
        "email_to",
        "email_from",
        "smtp_host",
        "smtp_port",
        "smtp_security",
        "smtp_user",
        "smtp_password",
        "smtp_ca",
        "webhook_url",
        "webhook_format",
        "no_check_minutes",
        "ui_url",
    )
}
SECURITY = ("starttls", "ssl", "none")
WEBHOOK_FORMATS = ("auto", "teams", "slack", "json")
DEFAULT_UI_URL = "http://127.0.0.1:3000"
DEFAULT_NO_CHECK_MINUTES = 15.0
ADDRESS = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+$")


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go; a channel is on when its address is set."""

    email_to: tuple[str, ...] = ()
    email_from: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_ca: str = ""
    webhook_url: str = ""
    webhook_format: str = "auto"
    no_check_minutes: float = DEFAULT_NO_CHECK_MINUTES
    ui_url: str = DEFAULT_UI_URL

    @property
    def enabled(self) -> bool:
        return bool(self.email_to or self.webhook_url)

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url}/runs/{run_id}"

    def job_url(self, job_name: str) -> str:
        return f"{self.ui_url}/runs?q%5B0%5D=job%3A{job_name}"


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError([f"{name}={value!r} is not an http:// or https:// URL"])
    return value.rstrip("/")


def _addresses(name: str, value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value or "").replace(";", ",").split(",")
    addresses = tuple(str(item).strip() for item in items if str(item).strip())
    bad = [a for a in addresses if not ADDRESS.match(a)]
    if bad:
        raise ConfigError([f"{name}={bad[0]!r} is not an e-mail address"])
    return addresses


def _minutes(name: str, value: object) -> float:
    try:
        minutes = float(str(value).strip())
    except ValueError:
        minutes = -1.0
    if not 1 <= minutes <= 7 * 24 * 60:
        raise ConfigError([f"{name}={value!r} must be a number of minutes, 1-10080"])
    return minutes


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError([f"{name}={value!r} must be one of {', '.join(choices)}"])
    return value


def alert_settings(values: Mapping[str, object], names: Mapping[str, str]) -> AlertSettings:
    """Validate ``values`` (field -> value; missing or empty: the default); errors name each
    field as ``names`` says. Every problem is reported at once."""
    text = {field: str(values.get(field) or "").strip() for field in FIELDS}
    problems: list[str] = []
    checked: dict[str, Any] = {}

    def check(field: str, function, *args) -> None:
        try:
            checked[field] = function(names[field], *args)
        except ConfigError as exc:
            problems.extend(exc.problems)

    check("email_to", _addresses, values.get("email_to"))
    if text["webhook_url"]:
        check("webhook_url", _url, text["webhook_url"])
    check("webhook_format", _choice, text["webhook_format"] or "auto", WEBHOOK_FORMATS)
    check("ui_url", _url, text["ui_url"] or DEFAULT_UI_URL)
    check("no_check_minutes", _minutes, text["no_check_minutes"] or DEFAULT_NO_CHECK_MINUTES)
    if checked.get("email_to"):
        check("smtp_host", check_host, text["smtp_host"] or None)
        check("smtp_port", check_port, text["smtp_port"] or 587)
        check("smtp_security", _choice, text["smtp_security"] or "starttls", SECURITY)
        sender = text["email_from"] or f"dicom-sync@{socket.getfqdn()}"
        check("email_from", lambda name, v: _addresses(name, v)[0], sender)
        if bool(text["smtp_user"]) != bool(text["smtp_password"]):
            given, other = ("smtp_user", "smtp_password")[:: 1 if text["smtp_user"] else -1]
            problems.append(f"{names[given]} is set but {names[other]} is not (login needs both)")
        if text["smtp_user"] and checked.get("smtp_security") == "none":
            problems.append(
                f"{names['smtp_user']} is set with {names['smtp_security']}=none: the password "
                "would cross the network in clear text (use starttls or ssl)"
            )
        if text["smtp_ca"]:
            try:  # loaded now, not at the first alert
                ssl.create_default_context(cafile=text["smtp_ca"])
            except (OSError, ssl.SSLError) as exc:
                problems.append(f"{names['smtp_ca']}={shorten(text['smtp_ca'])}: {exc}")
    if problems:
        raise ConfigError(problems)
    return AlertSettings(
        email_to=checked.get("email_to", ()),
        email_from=str(checked.get("email_from", "")),
        smtp_host=str(checked.get("smtp_host", "")),
        smtp_port=int(checked.get("smtp_port", 587)),
        smtp_security=str(checked.get("smtp_security", "starttls")),
        smtp_user=text["smtp_user"],
        smtp_password=str(values.get("smtp_password") or ""),  # spaces may be meant
        smtp_ca=text["smtp_ca"],
        webhook_url=str(checked.get("webhook_url", "")),
        webhook_format=str(checked["webhook_format"]),
        no_check_minutes=float(checked["no_check_minutes"]),
        ui_url=str(checked["ui_url"]),
    )


def load_alert_settings(
    env: Mapping[str, str] | None = None, folder: Path | None = None
) -> AlertSettings:
    """The alert settings of the routes file's ``alerts:`` block and the variables."""
    env = os.environ if env is None else env
    values: dict[str, object] = {f: env.get(v, "") for f, v in FIELDS.items()}
    names = dict(FIELDS)
    path = routes_file(env, folder)
    document = read_yaml(path.read_text(encoding="utf-8")) if path else None
    block = document.get("alerts") if isinstance(document, dict) else None
    if block is not None:
        if not isinstance(block, dict):
            raise ConfigError([f"{path}: alerts={block!r} must be a mapping ({', '.join(FIELDS)})"])
        unknown = sorted(set(block) - set(FIELDS))
        if unknown:
            raise ConfigError(
                [f"{path}: alerts: unknown field {unknown[0]!r} (known: {', '.join(FIELDS)})"]
            )
        for field, value in block.items():
            if value is not None and str(value).strip():
                values[field] = value
                names[field] = f"{path}: alerts.{field}"
    return alert_settings(values, names)
