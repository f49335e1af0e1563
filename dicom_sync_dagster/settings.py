"""Site settings from environment variables, validated before any network traffic.

Every error names the variable and the value, so a typo in ``.env`` is found at once.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .core.selection import Mode, Selection
from .core.text import shorten
from .dicom.node import DicomNode, Timeouts
from .dicom.tls import TlsFileError, TlsFiles, ssl_context

DEFAULT_CALLING_AE = "DICOMSYNC"

CALLING_AE = "DICOM_SYNC_CALLING_AE"
REMOTE_AE, REMOTE_HOST, REMOTE_PORT = (
    "DICOM_SYNC_REMOTE_AE",
    "DICOM_SYNC_REMOTE_HOST",
    "DICOM_SYNC_REMOTE_PORT",
)
LOCAL_AE, LOCAL_HOST, LOCAL_PORT = (
    "DICOM_SYNC_LOCAL_AE",
    "DICOM_SYNC_LOCAL_HOST",
    "DICOM_SYNC_LOCAL_PORT",
)
MOVE_DESTINATION = "DICOM_SYNC_MOVE_DESTINATION"
TIMEZONE = "DICOM_SYNC_TIMEZONE"
MODE = "DICOM_SYNC_MODE"
IMAGE_LIMIT = "DICOM_SYNC_IMAGE_LIMIT"
SCHEDULE = "DICOM_SYNC_SCHEDULE"

NODE_VARIABLES = {
    "remote": (REMOTE_AE, REMOTE_HOST, REMOTE_PORT),
    "local": (LOCAL_AE, LOCAL_HOST, LOCAL_PORT),
}
# PEM files: the CA that signed the node's certificate (TLS is on when set), and an optional
# client certificate and key.
REMOTE_TLS_CA, REMOTE_TLS_CERT, REMOTE_TLS_KEY = (
    "DICOM_SYNC_REMOTE_TLS_CA",
    "DICOM_SYNC_REMOTE_TLS_CERT",
    "DICOM_SYNC_REMOTE_TLS_KEY",
)
LOCAL_TLS_CA, LOCAL_TLS_CERT, LOCAL_TLS_KEY = (
    "DICOM_SYNC_LOCAL_TLS_CA",
    "DICOM_SYNC_LOCAL_TLS_CERT",
    "DICOM_SYNC_LOCAL_TLS_KEY",
)
TLS_VARIABLES = {
    "remote": (REMOTE_TLS_CA, REMOTE_TLS_CERT, REMOTE_TLS_KEY),
    "local": (LOCAL_TLS_CA, LOCAL_TLS_CERT, LOCAL_TLS_KEY),
}


# How a setting is named in error messages: the environment variable (default), or a mapping
# from it to another name, e.g. a field of one route in dicom_sync.yaml.
Names = Mapping[str, str] | None


def _namer(names: Names):
    return (lambda variable: names.get(variable, variable)) if names else (lambda v: v)


class ConfigError(ValueError):
    """One or more settings are invalid; the message lists each variable and value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


def check_ae_title(variable: str, value: str | None) -> str:
    """An AE title: 1-16 characters, no backslash or control characters, not only spaces."""
    if value is None or value == "":
        raise ConfigError([f"{variable} is not set (an AE title of 1-16 characters)"])
    problem = ""
    if len(value.strip()) > 16:
        problem = f"is {len(value.strip())} characters long; an AE title has at most 16"
    elif "\\" in value:
        problem = "contains a backslash"
    elif any(ord(c) < 32 or ord(c) == 127 for c in value):
        problem = "contains a control character"
    elif not value.strip():
        problem = "is only spaces"
    elif not value.isascii():
        problem = "contains non-ASCII characters"
    if problem:
        raise ConfigError([f"{variable}={shorten(value)} {problem}"])
    return value.strip()


def check_port(variable: str, value: str | int | None) -> int:
    """A TCP port, 1-65535."""
    if value is None or str(value).strip() == "":
        raise ConfigError([f"{variable} is not set (a TCP port 1-65535)"])
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ConfigError(
            [f"{variable}={shorten(value)} is not a TCP port (a whole number 1-65535)"]
        )
    return int(text)


def check_host(variable: str, value: str | None) -> str:
    """A host name or IP address: not empty, no spaces, no URL or ``host:port``."""
    if value is None or not value.strip():
        raise ConfigError([f"{variable} is not set (a host name or IP address)"])
    host = value.strip()
    problem = ""
    if any(c.isspace() for c in host):
        problem = "contains white space"
    elif "/" in host or "@" in host:
        problem = "is not a host name or IP address (a URL?)"
    elif ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            problem = "is not a host name or IP address (the port goes in its own variable)"
    if problem:
        raise ConfigError([f"{variable}={shorten(value)} {problem}"])
    return host


def machine_zone_name() -> str:
    """The IANA name of this machine's zone (TZ, /etc/timezone, /etc/localtime), else 'UTC'."""
    if os.environ.get("TZ"):
        return os.environ["TZ"].lstrip(":")
    etc_timezone = Path("/etc/timezone")
    if etc_timezone.is_file() and etc_timezone.read_text().strip():
        return etc_timezone.read_text().strip()
    localtime = Path("/etc/localtime")
    if localtime.is_symlink() and "zoneinfo/" in str(localtime.resolve()):
        return str(localtime.resolve()).split("zoneinfo/", 1)[1]
    return "UTC"


def check_timezone(variable: str, value: str | None) -> tuple[str, tzinfo]:
    """An IANA zone name such as ``Europe/Berlin``; empty means the machine's zone."""
    name = (value or "").strip()
    problem = f"{variable}={shorten(name)} is not an IANA time zone (e.g. Europe/Berlin)"
    if not name:
        name = machine_zone_name()
        problem = (
            f"{variable} is not set and this machine's zone {shorten(name)} is not an IANA time "
            "zone; set it, e.g. Europe/Berlin"
        )
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError([problem]) from None


def check_tls(
    role: str, ca: str | None, cert: str | None, key: str | None, names: Names = None
) -> TlsFiles | None:
    """A node's TLS files, loaded once to prove they work; ``None`` (no TLS) without a CA."""
    fields = ("ca", "cert", "key")
    variables = dict(zip(fields, map(_namer(names), TLS_VARIABLES[role]), strict=True))
    values = dict(zip(fields, ((v or "").strip() or None for v in (ca, cert, key)), strict=True))
    given = [name for name in fields if values[name]]
    if not given:
        return None
    if values["ca"] is None:
        name, missing, why = given[0], "ca", "TLS is on only with a CA"
    elif (values["cert"] is None) != (values["key"] is None):
        name, missing = ("cert", "key") if values["cert"] else ("key", "cert")
        why = "a client certificate and its key go together"
    else:
        name = missing = ""
    if missing:
        variable, other = variables[name], variables[missing]
        raise ConfigError([f"{variable}={shorten(values[name])} is set but {other} is not ({why})"])
    files = TlsFiles(**values)
    try:
        ssl_context(files)
    except TlsFileError as exc:
        raise ConfigError([f"{variables[exc.field]}={shorten(exc.path)} {exc.problem}"]) from None
    return files


def check_selection(
    mode: str | None, image_limit: str | int | None, names: Names = None
) -> Selection:
    """The series selection from a mode name and, for ``fewer_than``, an image limit."""
    name = _namer(names)
    mode_text = str(mode or "").strip() or Mode.smallest.value
    try:
        chosen = Mode(mode_text)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ConfigError([f"{name(MODE)}={shorten(mode_text)} is not one of {choices}"]) from None
    if chosen is not Mode.fewer_than:
        return Selection(chosen)
    limit_text = str(image_limit if image_limit is not None else "").strip()
    if not (limit_text.isascii() and limit_text.isdigit()) or int(limit_text) < 1:
        raise ConfigError(
            [
                f"{name(IMAGE_LIMIT)}={shorten(limit_text)} must be a whole number >= 1 "
                "for mode fewer_than"
            ]
        )
    return Selection(chosen, int(limit_text))


@dataclass(frozen=True)
class SyncSettings:
    """Who talks to whom: the two nodes, our AE title, where moves go, the PACS's zone."""

    remote: DicomNode
    local: DicomNode
    calling_ae: str = DEFAULT_CALLING_AE
    move_destination: str = ""
    timezone_name: str = "UTC"
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_parallel_moves: int = 4
    move_retries: int = 2
    retry_backoff_seconds: float = 2.0
    confirm_seconds: float = 10.0

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone_name)

    @property
    def destination(self) -> str:
        return self.move_destination or self.local.ae_title


def _collect(problems: list[str], check, *args):
    try:
        return check(*args)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def node_from_values(
    role: str,
    ae_title: str | None,
    host: str | None,
    port: str | int | None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    names: Names = None,
) -> DicomNode:
    """A validated node; errors name the ``DICOM_SYNC_<ROLE>_*`` variables (or ``names``)."""
    ae_var, host_var, port_var = map(_namer(names), NODE_VARIABLES[role])
    problems: list[str] = []
    ae = _collect(problems, check_ae_title, ae_var, ae_title)
    checked_host = _collect(problems, check_host, host_var, host)
    checked_port = _collect(problems, check_port, port_var, port)
    tls = _collect(problems, check_tls, role, tls_ca, tls_cert, tls_key, names)
    if problems:
        raise ConfigError(problems)
    return DicomNode(role, ae, checked_host, checked_port, tls)


def settings_from_values(
    *,
    remote: tuple[str | int | None, ...],
    local: tuple[str | int | None, ...],
    calling_ae: str | None = None,
    move_destination: str | None = None,
    timezone: str | None = None,
    timeouts: Timeouts | None = None,
    max_parallel_moves: int = 4,
    move_retries: int = 2,
    retry_backoff_seconds: float = 2.0,
    confirm_seconds: float = 10.0,
    names: Names = None,
) -> SyncSettings:
    """Validate every value, and report every bad one at once. ``remote`` and ``local`` are
    (AE title, host, port), optionally followed by (TLS CA, cert, key). Errors name the
    environment variables, or what ``names`` maps them to."""
    name = _namer(names)
    problems: list[str] = []
    nodes = [
        _collect(problems, node_from_values, role, *values, *[None] * (6 - len(values)), names)
        for role, values in (("remote", remote), ("local", local))
    ]
    calling_name = name(CALLING_AE)
    calling = _collect(problems, check_ae_title, calling_name, calling_ae or DEFAULT_CALLING_AE)
    destination = ""
    if move_destination:
        destination = (
            _collect(problems, check_ae_title, name(MOVE_DESTINATION), move_destination) or ""
        )
    zone = _collect(problems, check_timezone, name(TIMEZONE), timezone)
    limits = timeouts or Timeouts()
    for option, value, low, high in (
        ("max_parallel_moves", max_parallel_moves, 1, 32),
        ("move_retries", move_retries, 0, 10),
        ("retry_backoff_seconds", retry_backoff_seconds, 0, 300),
        ("confirm_seconds", confirm_seconds, 0, 600),
        ("find_deadline", limits.find_deadline, 1, 24 * 3600),
        ("move_no_progress_timeout", limits.move_no_progress, 1, 24 * 3600),
        ("move_deadline", limits.move_deadline, 1, 24 * 3600),
        ("max_find_answers", limits.find_answers, 1, 10_000_000),
    ):
        if not low <= value <= high:
            problems.append(f"{name(option)}={shorten(value)} must be {low}-{high}")
    if problems:
        raise ConfigError(problems)
    return SyncSettings(
        remote=nodes[0],
        local=nodes[1],
        calling_ae=calling,
        move_destination=destination,
        timezone_name=zone[0],
        timeouts=limits,
        max_parallel_moves=max_parallel_moves,
        move_retries=move_retries,
        retry_backoff_seconds=retry_backoff_seconds,
        confirm_seconds=confirm_seconds,
    )


def settings_from_env(env: Mapping[str, str] | None = None) -> SyncSettings:
    """The settings from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    return settings_from_values(
        remote=tuple(map(env.get, NODE_VARIABLES["remote"] + TLS_VARIABLES["remote"])),
        local=tuple(map(env.get, NODE_VARIABLES["local"] + TLS_VARIABLES["local"])),
        calling_ae=env.get(CALLING_AE),
        move_destination=env.get(MOVE_DESTINATION),
        timezone=env.get(TIMEZONE),
    )
