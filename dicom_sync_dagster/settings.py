"""Site settings from environment variables, validated before any network traffic.

Every error names the variable and the value, so a typo in ``.env`` is found at once.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import options as o
from .core.selection import Mode, Selection, limit_problem
from .core.text import shorten
from .dicom.node import DicomNode, Timeouts
from .dicom.tls import TlsFileError, TlsFiles, ssl_context

# The variables, as the model names them (kept as names here: other modules and tests use them).
DEFAULT_CALLING_AE = o.DEFAULT_CALLING_AE
CALLING_AE = o.CALLING_AE.variable
MOVE_DESTINATION = o.MOVE_DESTINATION.variable
TIMEZONE = o.TIMEZONE.variable
MODE = o.MODE.variable
IMAGE_LIMIT = o.IMAGE_LIMIT.variable
SCHEDULE = o.PREFIX + "SCHEDULE"  # the schedules' default status (schedules.py)

NODE_VARIABLES = {role: o.node_variables(role)[:3] for role in o.ROLES}  # AE, host, port
REMOTE_AE, REMOTE_HOST, REMOTE_PORT = NODE_VARIABLES["remote"]
LOCAL_AE, LOCAL_HOST, LOCAL_PORT = NODE_VARIABLES["local"]
# PEM files: the CA that signed the node's certificate (TLS is on when set), and an optional
# client certificate and key.
TLS_VARIABLES = {role: o.node_variables(role)[3:] for role in o.ROLES}
REMOTE_TLS_CA, REMOTE_TLS_CERT, REMOTE_TLS_KEY = TLS_VARIABLES["remote"]
LOCAL_TLS_CA, LOCAL_TLS_CERT, LOCAL_TLS_KEY = TLS_VARIABLES["local"]


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
    files = TlsFiles(str(values["ca"]), values["cert"], values["key"])
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
    mode_text = str(mode or "").strip() or o.MODE.default
    try:
        chosen = Mode(mode_text)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ConfigError([f"{name(MODE)}={shorten(mode_text)} is not one of {choices}"]) from None
    if chosen is not Mode.fewer_than:
        return Selection(chosen)
    limit_text = str(image_limit if image_limit is not None else "").strip()
    limit = int(limit_text) if limit_text.isascii() and limit_text.isdigit() else 0
    if limit_problem(name(IMAGE_LIMIT), limit):  # the text as written in the message
        raise ConfigError([str(limit_problem(name(IMAGE_LIMIT), limit_text))])
    return Selection(chosen, limit)


@dataclass(frozen=True)
class SyncSettings:
    """Who talks to whom: the two nodes, our AE title, where moves go, the PACS's zone; and
    how (the options of :data:`SETTINGS_OPTIONS`, defaults from the model)."""

    remote: DicomNode
    local: DicomNode
    calling_ae: str = o.CALLING_AE.default
    move_destination: str = o.MOVE_DESTINATION.default
    timezone_name: str = "UTC"
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_parallel_moves: int = o.MAX_PARALLEL_MOVES.default
    move_retries: int = o.MOVE_RETRIES.default
    retry_backoff_seconds: float = o.RETRY_BACKOFF_SECONDS.default
    confirm_seconds: float = o.CONFIRM_SECONDS.default

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone_name)

    @property
    def destination(self) -> str:
        return self.move_destination or self.local.ae_title


# The options SyncSettings is made of (the others are a route's run defaults).
SETTINGS_OPTIONS = tuple(option for option in o.OPTIONS if option not in o.RUN_OPTIONS)
# Numbers that are SyncSettings fields of their own name (not text, not a Timeouts field).
_NUMBERS = tuple(x for x in SETTINGS_OPTIONS if x.kind is not str and not x.timeout)


def _collect(problems: list[str], check, *args):
    try:
        return check(*args)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


NodeValues = Mapping[str, object] | tuple[object, ...]


def node_from_values(role: str, values: NodeValues, names: Names = None) -> DicomNode:
    """A validated node from its fields (``options.NODE``: ae_title, host, port, tls_ca,
    tls_cert, tls_key), a mapping or a tuple in that order, missing ones unset. Errors name
    the ``DICOM_SYNC_<ROLE>_*`` variables (or what ``names`` maps them to)."""
    given = (
        values if isinstance(values, Mapping) else dict(zip(o.NODE_FIELDS, values, strict=False))
    )
    text = {key: None if given.get(key) is None else str(given[key]) for key in o.NODE_FIELDS}
    ae_var, host_var, port_var = map(_namer(names), NODE_VARIABLES[role])
    problems: list[str] = []
    ae = _collect(problems, check_ae_title, ae_var, text["ae_title"])
    checked_host = _collect(problems, check_host, host_var, text["host"])
    checked_port = _collect(problems, check_port, port_var, text["port"])
    tls_values = (text["tls_ca"], text["tls_cert"], text["tls_key"])
    tls = _collect(problems, check_tls, role, *tls_values, names)
    if problems:
        raise ConfigError(problems)
    return DicomNode(role, ae, checked_host, checked_port, tls)


def settings_from_values(
    *,
    remote: NodeValues,
    local: NodeValues,
    timeouts: Timeouts | None = None,
    names: Names = None,
    **options: object,
) -> SyncSettings:
    """Validate every value, and report every bad one at once. ``remote`` and ``local``: see
    :func:`node_from_values`. ``options``: any of :data:`SETTINGS_OPTIONS` by name (missing or
    empty text: the default); a timeout option replaces that field of ``timeouts``. Errors
    name the environment variables, or what ``names`` maps them to (else the option)."""
    unknown = set(options) - {option.name for option in SETTINGS_OPTIONS}
    if unknown:
        raise TypeError(f"settings_from_values: not a setting: {', '.join(sorted(unknown))}")
    name = _namer(names)
    problems: list[str] = []
    nodes = [
        _collect(problems, node_from_values, role, values, names)
        for role, values in (("remote", remote), ("local", local))
    ]

    def text(option: o.Option) -> str:
        return str(options.get(option.name) or "")

    calling_ae = text(o.CALLING_AE) or o.CALLING_AE.default
    calling = _collect(problems, check_ae_title, name(CALLING_AE), calling_ae)
    destination = ""
    if text(o.MOVE_DESTINATION):
        destination = (
            _collect(problems, check_ae_title, name(MOVE_DESTINATION), text(o.MOVE_DESTINATION))
            or ""
        )
    zone = _collect(problems, check_timezone, name(TIMEZONE), text(o.TIMEZONE) or None)
    limits = replace(
        timeouts or Timeouts(),
        **{x.timeout: x.kind(options[x.name]) for x in o.TIMEOUT_OPTIONS if x.name in options},
    )
    numbers = {x.name: x.kind(options.get(x.name, x.default)) for x in _NUMBERS}
    checked = [(x, numbers[x.name]) for x in _NUMBERS]
    checked += [(x, getattr(limits, x.timeout)) for x in o.TIMEOUT_OPTIONS]
    for option, value in checked:
        problem = option.problem(name(option.name), value)
        if problem:
            problems.append(problem)
    if problems:
        raise ConfigError(problems)
    return SyncSettings(
        remote=nodes[0],
        local=nodes[1],
        calling_ae=calling,
        move_destination=destination,
        timezone_name=zone[0],
        timeouts=limits,
        **numbers,
    )


def settings_from_env(env: Mapping[str, str] | None = None) -> SyncSettings:
    """The settings from ``env`` (default: ``os.environ``): the variables of the model."""
    env = os.environ if env is None else env
    options: dict[str, Any] = {x.name: env.get(x.variable) for x in SETTINGS_OPTIONS if x.variable}
    return settings_from_values(
        remote=tuple(map(env.get, o.node_variables("remote"))),
        local=tuple(map(env.get, o.node_variables("local"))),
        **options,
    )
