"""What `dicom-sync configure` asks for: the fields, derived from the settings model
(:mod:`dicom_sync_dagster.options`), and their checks (those of :mod:`..settings`)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import options as o
from ..core.text import shorten
from ..settings import (
    ConfigError,
    check_ae_title,
    check_host,
    check_port,
    check_timezone,
    machine_zone_name,
)


@dataclass(frozen=True)
class Field:
    """One value to configure: its flag, its variable (None: a name, kept as a comment)."""

    key: str
    variable: str | None
    kind: str  # name | ae_title | host | port | destination | timezone
    label: str
    help: str
    default: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def required(self) -> bool:
        """The node values: without them there is nothing to configure."""
        return self.key.startswith(("local_", "remote_")) and self.kind != "name"


def _node_fields(role: str) -> list[Field]:
    name = Field(
        f"{role}_name",
        None,
        "name",
        f"Name (free text, e.g. {role.title()} PACS)",
        f"{role} PACS name",
    )
    return [name] + [
        Field(
            f"{role}_{field.flag}",
            field.variable(role),
            field.check,
            field.prompt,
            f"{role} PACS: {field.description.rstrip('.')}",
        )
        for field in o.NODE
        if field.prompt
    ]


def _option_field(option: o.Option) -> Field:
    kind = "destination" if option is o.MOVE_DESTINATION else option.check
    default = f" (default {option.default})" if option.default else ""
    text = f"{option.description.rstrip('.')}{default}"
    return Field(option.name, option.variable, kind, option.prompt, text, str(option.default))


TOOL_FIELDS = tuple(_option_field(option) for option in o.OPTIONS if option.prompt)
SECTIONS = (
    ("Local PACS (receives the series):", tuple(_node_fields("local"))),
    ("Remote PACS (the source):", tuple(_node_fields("remote"))),
    ("This tool:", TOOL_FIELDS),
)
FIELDS = tuple(field for _, fields in SECTIONS for field in fields)
BY_KEY = {f.key: f for f in FIELDS}


def check(field: Field, source: str, raw: object, local_ae: str = "") -> str:
    """The value as written to ``.env``; raises ConfigError naming ``source`` and ``raw``."""
    if field.kind == "name":
        if raw is not None and not isinstance(raw, str):
            raise ConfigError([f"{source}={raw!r} is not text"])
        # A name is a comment: one line, no control characters.
        return " ".join("".join(c if c.isprintable() else " " for c in raw or "").split())
    if field.kind == "port":
        if isinstance(raw, bool) or not isinstance(raw, (str, int, type(None))):
            raise ConfigError([f"{source}={raw!r} is not a TCP port (a whole number 1-65535)"])
        return str(check_port(source, raw))
    if raw is not None and not isinstance(raw, str):
        raise ConfigError([f"{source}={raw!r} is not text"])
    if raw and "${" in raw:
        raise ConfigError(
            [
                f"{source}={shorten(raw)} contains '${{', which every .env reader (dagster, "
                "python-dotenv) expands as a variable; it cannot be written to .env as given"
            ]
        )
    if field.kind == "ae_title":
        return check_ae_title(source, raw)
    if field.kind == "host":
        return check_host(source, raw)
    if field.kind == "destination":
        return check_ae_title(source, raw) if (raw or "").strip() else local_ae
    return check_timezone(source, raw)[0]


def check_all(checks: list[tuple[Field, str, object]], local_ae: str = "") -> dict[str, str]:
    """Check every (field, source, raw); report every bad one at once."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for field, source, raw in checks:
        try:
            values[field.key] = check(field, source, raw, local_ae)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return values


def default_for(field: Field, env: dict[str, str], names: dict[str, str], values: dict) -> str:
    """What Enter accepts: the ``.env`` value, else the model's default."""
    if field.kind == "name":
        return names.get(field.key, "")
    if field.kind == "destination":
        current = env.get(field.variable or "", "").strip()
        old_local = env.get(o.NODE[0].variable("local"), "").strip()
        return current if current and current != old_local else values.get("local_ae", "")
    value = env.get(field.variable or "", "")
    if value.strip():
        return value
    if field.kind == "timezone":
        return machine_zone_name()
    return field.default
