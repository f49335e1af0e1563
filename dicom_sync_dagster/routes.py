"""Routes: which remote PACS feed which local PACS, how and how often (no Dagster here but
its cron check).

Without a routes file there is one route, ``default``, from the ``DICOM_SYNC_*`` environment
variables (job ``dicom_sync``). With ``dicom_sync.yaml`` (or the file ``DICOM_SYNC_ROUTES_FILE``
names) every route listed there gets its own job, schedule and archive asset. The file is
validated as a whole when the code location loads: every error names the route and the field.

    # dicom_sync.yaml: top-level settings apply to every route unless the route sets its own
    calling_ae: DICOMSYNC
    timezone: Europe/Berlin
    local: {ae_title: LOCALPACS, host: 10.0.0.5, port: 104}
    routes:
      - name: ct_north
        remote: {ae_title: CTNORTH, host: 10.1.0.7, port: 104}
      - name: mri_south
        remote: {ae_title: MRISOUTH, host: 10.2.0.9, port: 11112}
        mode: all
        schedule: "*/5 * * * *"
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import options as o
from .core.text import printable, shorten
from .settings import (
    SETTINGS_OPTIONS,
    ConfigError,
    SyncSettings,
    check_selection,
    settings_from_values,
)

ROUTES_FILE = "DICOM_SYNC_ROUTES_FILE"
DEFAULT_FILE = "dicom_sync.yaml"
NO_FILE = "none"  # DICOM_SYNC_ROUTES_FILE=none: the environment variables, whatever is here
DEFAULT_ROUTE = "default"
EVERY_MINUTE = "* * * * *"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_WINDOW_HOURS = o.MAX_WINDOW_HOURS

NODE_FIELDS = o.NODE_FIELDS
# Options a route may set (or inherit from the top level), with their defaults: the model's.
OptionValue = str | int | float
OPTION_DEFAULTS: dict[str, OptionValue] = {x.name: x.default for x in o.FILE_OPTIONS}
SCHEDULE_FIELDS = ("schedule", "schedule_status")
ROUTE_FIELDS = {"name", "remote", "local", *OPTION_DEFAULTS, *SCHEDULE_FIELDS}
TOP_FIELDS = (ROUTE_FIELDS - {"name", "remote"}) | {"routes", "alerts"}  # alerts/settings.py
# The environment variable a field stands in for, so the settings checks can name the field.
_VARIABLE_OF = o.field_of_variable()


@dataclass(frozen=True)
class Route:
    """One remote -> local route. ``source`` is empty for the environment-variable route."""

    name: str
    remote: Mapping[str, str] = field(default_factory=dict)
    local: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, OptionValue] = field(default_factory=lambda: dict(OPTION_DEFAULTS))
    cron: str = EVERY_MINUTE
    schedule_on: bool = True
    source: str = ""
    names: Mapping[str, str] = field(default_factory=dict)  # for settings errors

    @property
    def from_env(self) -> bool:
        return not self.source

    @property
    def job_name(self) -> str:
        return "dicom_sync" if self.name == DEFAULT_ROUTE else f"sync_{self.name}"

    @property
    def schedule_name(self) -> str:
        return "every_minute" if self.name == DEFAULT_ROUTE else f"{self.job_name}_schedule"

    @property
    def check_job_name(self) -> str:
        return "check_connections" if self.name == DEFAULT_ROUTE else f"check_{self.name}"

    @property
    def state_suffix(self) -> str:
        return state_suffix(self.name)


def state_suffix(route_name: str) -> str:
    """Appended to the names of a route's files in the instance folder (none for default)."""
    return "" if route_name == DEFAULT_ROUTE else f"-{route_name}"


def field_names(source: str | Callable[[str], str]) -> dict[str, str]:
    """Names for the settings checks' messages instead of variables: ``<source>.<field>``, or
    what ``source(field)`` says (where in the file the field is written)."""
    name = source if callable(source) else lambda field: f"{source}.{field}"
    names = {variable: name(field) for variable, field in _VARIABLE_OF.items()}
    names.update({option: name(option) for option in OPTION_DEFAULTS})
    return names


def routes_file(env: Mapping[str, str] | None = None, folder: Path | None = None) -> Path | None:
    """The routes file in use: ``DICOM_SYNC_ROUTES_FILE``, else ``dicom_sync.yaml`` in
    ``folder`` (the working folder) when it exists, else ``None`` (environment variables;
    also when the variable says ``none``)."""
    env = os.environ if env is None else env
    named = env.get(ROUTES_FILE, "").strip()
    if named.lower() == NO_FILE:
        return None
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError([f"{ROUTES_FILE}={shorten(named)}: no such file"])
        return path
    default = (folder or Path.cwd()) / DEFAULT_FILE
    return default if default.is_file() else None


MAX_FILE_BYTES = 1024 * 1024  # a routes file is a few kilobytes


class _PlainLoader(yaml.SafeLoader):
    """YAML without 1.1's surprises: ``on``/``off``/``yes``/``no`` stay text (an AE title
    ``ON`` is not ``True``) and ``0104`` is decimal text, not octal 68. Aliases (``*name``)
    are refused: a few of them nested make a small file expand past any memory."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a routes file", mark
            )
        return super().compose_node(parent, index)


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, rule) for tag, rule in rules if not tag.endswith((":bool", ":int"))]
    for first, rules in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PlainLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9]*)$"), list("-+0123456789")
)


def read_yaml(text: str) -> object:
    return yaml.load(text, Loader=_PlainLoader)  # a SafeLoader


# Environment variables a routes file takes as top-level defaults (the node, mode, TLS and
# move-destination variables describe the one environment route and are not read).
ENV_DEFAULTS = {x.name: x.variable for x in o.OPTIONS if x.file_default}


def load_routes(env: Mapping[str, str] | None = None, folder: Path | None = None) -> list[Route]:
    """The routes of the routes file, or the one environment-variable route."""
    env = os.environ if env is None else env
    path = routes_file(env, folder)
    if path is None:
        return [Route(DEFAULT_ROUTE)]
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError([f"{path}: larger than {MAX_FILE_BYTES} bytes; not a routes file"])
        document = read_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        lines = str(exc)[:1000].splitlines() or [""]
        problem = "\n  ".join(printable(line, 200) for line in lines)
        problem = "nested too deeply" if isinstance(exc, RecursionError) else problem
        raise ConfigError([f"{path}: cannot be read as YAML: {problem}"]) from None
    defaults = {key: env[var] for key, var in ENV_DEFAULTS.items() if env.get(var, "").strip()}
    return parse_routes(document, str(path), defaults)


def parse_routes(
    document: object, label: str = DEFAULT_FILE, defaults: Mapping[str, str] | None = None
) -> list[Route]:
    """Validate a parsed routes file; every problem in it is reported at once.
    ``defaults`` stand in for top-level fields the file leaves out."""
    if not isinstance(document, dict):
        raise ConfigError([f"{label}: expected a mapping with a 'routes' list at the top"])
    problems = _unknown_fields(document, TOP_FIELDS, label)
    top = {**(defaults or {}), **document}
    entries = document.get("routes")
    if not isinstance(entries, list) or not entries:
        problems.append(f"{label}: 'routes' must be a non-empty list of routes")
        raise ConfigError(problems)
    routes: list[Route] = []
    for index, entry in enumerate(entries):
        where = f"{label}: routes[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a mapping (name, remote, ...)")
            continue
        name = entry.get("name")
        if isinstance(name, str) and NAME_PATTERN.match(name):
            where = f"{label}: route {name}"
        else:
            problems.append(
                f"{where}.name={shorten(name)} must be 1-40 lower-case letters, digits or _, "
                "starting with a letter (it names the route's job and schedule)"
            )
        problems += _unknown_fields(entry, ROUTE_FIELDS, where)
        try:
            routes.append(_route(top, entry, str(name), where, label))
        except ConfigError as exc:
            problems += exc.problems
    names = [route.name for route in routes]
    problems += [
        f"{label}: route name {shorten(name)} is used {names.count(name)} times"
        for name in sorted({n for n in names if names.count(n) > 1})
    ]
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))  # a top-level error once, not per route
    return routes


def _unknown_fields(mapping: dict, known: set[str], where: str) -> list[str]:
    return [
        f"{where}: unknown field {shorten(key)} (known: {', '.join(sorted(known))})"
        for key in mapping
        if key not in known
    ]


def _node(value: object, where: str) -> dict[str, str]:
    if value is None:
        raise ConfigError([f"{where} is not set (ae_title, host, port)"])
    if not isinstance(value, dict):
        raise ConfigError([f"{where}={shorten(value)} must be a mapping (ae_title, host, port)"])
    problems = _unknown_fields(value, set(NODE_FIELDS), where)
    if problems:
        raise ConfigError(problems)
    return {key: "" if value.get(key) is None else str(value[key]) for key in NODE_FIELDS}


def _number(value: object, name: str, kind: type) -> int | float:
    """An int or float option; text is refused with the field named."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError([f"{name}={shorten(value)} must be a number"])
    if not math.isfinite(value):
        raise ConfigError([f"{name}={shorten(value)} must be a finite number"])
    if kind is int and value != int(value):
        raise ConfigError([f"{name}={shorten(value)} must be a whole number"])
    return int(value) if kind is int else float(value)


def route_settings(route: Route) -> SyncSettings:
    """A file route's validated settings; errors name the field where it is written."""
    options: dict[str, Any] = {
        x.name: route.options[x.name] for x in SETTINGS_OPTIONS if x.name in route.options
    }
    return settings_from_values(
        remote=route.remote, local=route.local, names=route.names, **options
    )


def _route(top: dict, entry: dict, name: str, where: str, label: str) -> Route:
    """One route: its own fields, else the top-level ones, else the defaults; validated.
    Errors name a field where it is written: in the route, or at the top of the file."""
    # move_destination goes with the local PACS: a route with a local of its own does not
    # take the top-level one (its C-MOVEs would go to the other local, every minute).
    inherit = {key: top[key] for key in top if not (key == "move_destination" and "local" in entry)}

    def pick(key: str, default: object = None) -> object:
        return entry.get(key, inherit.get(key, default))

    def origin(key: str) -> str:  # "local.port" is written where "local" is
        head = key.split(".")[0]
        return f"{where}.{key}" if head in entry or head not in inherit else f"{label}: {key}"

    problems: list[str] = []
    nodes: dict[str, dict[str, str]] = {}
    for role in ("remote", "local"):
        value = entry.get(role) if role == "remote" else pick(role)
        try:
            nodes[role] = _node(value, origin(role))
        except ConfigError as exc:
            problems += exc.problems
    options: dict[str, OptionValue] = {}
    for option in o.FILE_OPTIONS:
        value = pick(option.name, option.default)
        if option.kind is str:
            options[option.name] = "" if value is None else str(value)
            continue
        try:
            options[option.name] = _number(value, origin(option.name), option.kind)
        except ConfigError as exc:
            problems += exc.problems
            options[option.name] = option.default  # reported; the other checks go on
    names = field_names(origin)
    cron, status = str(pick("schedule", EVERY_MINUTE)), str(pick("schedule_status", "on"))
    route = Route(
        name=name,
        remote=nodes.get("remote", {}),
        local=nodes.get("local", {}),
        options=options,
        cron=cron,
        schedule_on=status == "on",
        source=where,
        names=names,
    )
    if len(nodes) == 2:  # else a node is missing or malformed: reported above
        try:
            route_settings(route)
        except ConfigError as exc:
            problems += exc.problems
    try:
        check_selection(str(options["mode"]), str(options["image_limit"]), names)
    except ConfigError as exc:
        problems += exc.problems
    problems += _check_route_options(options, nodes, where, origin)
    problems += _check_schedule(cron, status, origin)
    if problems:
        raise ConfigError(problems)
    return route


def _check_route_options(options: dict, nodes: dict, where: str, origin) -> list[str]:
    """The run options' ranges (the connection's are checked with the settings), and two
    nodes that are one."""
    problems = [
        problem
        for option in o.RUN_OPTIONS
        if option.kind is not str
        for problem in [option.problem(origin(option.name), options[option.name])]
        if problem
    ]
    remote, local = nodes.get("remote"), nodes.get("local")
    same = remote and local and all(remote[k] == local[k] for k in ("ae_title", "host", "port"))
    if same and remote:
        problems.append(f"{where}: remote and local are the same node ({remote['ae_title']})")
    return problems


def _valid_cron(cron: str) -> bool:
    """Whether Dagster takes ``cron`` for a schedule: asked through its public API (a schedule
    definition refuses what its scheduler cannot run, e.g. seconds or 30 February)."""
    from dagster import DagsterInvalidDefinitionError, ScheduleDefinition

    try:
        ScheduleDefinition(name="cron_check", cron_schedule=cron, job_name="cron_check")
    except DagsterInvalidDefinitionError:
        return False
    return True


def _check_schedule(cron: str, status: str, origin) -> list[str]:
    problems = []
    if not _valid_cron(cron):
        problems.append(
            f"{origin('schedule')}={shorten(cron)} is not a cron expression, e.g. '* * * * *'"
        )
    if status not in ("on", "off"):
        problems.append(f"{origin('schedule_status')}={shorten(status)} must be 'on' or 'off'")
    return problems
