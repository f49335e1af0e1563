"""`dicom-sync configure`: write the DICOM_SYNC_* settings to ``.env``, then C-ECHO both nodes.

Three ways to give the values, which can be combined (first wins):

1. flags (``--local-ae`` ...): when every required value comes from flags (or ``--import``),
   nothing is asked;
2. ``--import dicom_config.json``, the config file of the original ``dicom_mover`` tool;
3. questions on the terminal, like dicom_mover's first-run set-up, offering the values of
   an existing ``.env`` (else the built-in defaults) in [brackets].

Every value is checked on entry with the checks of :mod:`.settings`; a bad flag or imported
field stops with exit code 2 before anything is written or sent; a bad answer is asked again.
An existing ``.env`` is updated in place (other lines kept), never replaced without consent:
a session that asked questions asks "update .env?", otherwise ``--force`` is required.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from .core.text import shorten
from .dicom.node import DicomNode
from .exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from .settings import (
    CALLING_AE,
    DEFAULT_CALLING_AE,
    LOCAL_AE,
    LOCAL_HOST,
    LOCAL_PORT,
    MOVE_DESTINATION,
    REMOTE_AE,
    REMOTE_HOST,
    REMOTE_PORT,
    TIMEZONE,
    TLS_VARIABLES,
    ConfigError,
    SyncSettings,
    check_ae_title,
    check_host,
    check_port,
    check_timezone,
    machine_zone_name,
    settings_from_values,
)

ENV_FILE = ".env"
DESCRIPTION = """\
Write the DICOM_SYNC_* settings to .env in this folder, then C-ECHO both PACS.

Values come from the flags, else from --import (dicom_mover's dicom_config.json), else are
asked on the terminal with the current .env's values (or the defaults) in [brackets]. With
every node value given by flags or --import nothing is asked; without a terminal, missing
values must be in .env. An existing .env is updated in place, other lines kept: after
questions it asks first, otherwise it needs --force.

Exit codes: 0 written and both nodes answered, 1 written but a node did not answer,
2 nothing written (bad value, missing value, .env kept)."""


@dataclass(frozen=True)
class Field:
    """One value to configure: its flag, its variable (None: a name, kept as a comment)."""

    key: str
    variable: str | None
    kind: str  # name | ae | host | port | destination | timezone
    label: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def required(self) -> bool:
        """The node values: without them there is nothing to configure."""
        return self.key.startswith(("local_", "remote_")) and self.kind != "name"


FIELDS = (
    Field("local_name", None, "name", "Name (free text, e.g. Local PACS)", "local PACS name"),
    Field("local_ae", LOCAL_AE, "ae", "AE title", "local PACS AE title"),
    Field("local_host", LOCAL_HOST, "host", "Host (IP address)", "local PACS host"),
    Field("local_port", LOCAL_PORT, "port", "Port", "local PACS port"),
    Field("remote_name", None, "name", "Name (free text, e.g. Remote PACS)", "remote PACS name"),
    Field("remote_ae", REMOTE_AE, "ae", "AE title", "remote PACS AE title"),
    Field("remote_host", REMOTE_HOST, "host", "Host (IP address)", "remote PACS host"),
    Field("remote_port", REMOTE_PORT, "port", "Port", "remote PACS port"),
    Field(
        "calling_ae",
        CALLING_AE,
        "ae",
        "Calling AE title of this tool (both PACS must know it)",
        f"AE title this tool calls with (default {DEFAULT_CALLING_AE})",
    ),
    Field(
        "move_destination",
        MOVE_DESTINATION,
        "destination",
        "Move destination (AE title the remote sends the images to)",
        "AE title the remote C-MOVEs to (default: the local AE title)",
    ),
    Field(
        "timezone",
        TIMEZONE,
        "timezone",
        "Time zone of the PACS' StudyDate/StudyTime (IANA name)",
        "IANA zone of the PACS (default: this machine's zone)",
    ),
)
BY_KEY = {f.key: f for f in FIELDS}
SECTIONS = (
    ("Local PACS (receives the series):", ("local_name", "local_ae", "local_host", "local_port")),
    ("Remote PACS (the source):", ("remote_name", "remote_ae", "remote_host", "remote_port")),
    ("This tool:", ("calling_ae", "move_destination", "timezone")),
)
WRITE_ORDER = (CALLING_AE, REMOTE_AE, REMOTE_HOST, REMOTE_PORT, LOCAL_AE, LOCAL_HOST, LOCAL_PORT)
WRITE_ORDER += (MOVE_DESTINATION, TIMEZONE)
NAME_COMMENT = re.compile(r"^#\s*(local|remote) PACS name:[ \t]?(.*?)\s*$")
ENV_LINE = re.compile(r"^\s*(?:export\s+)?(DICOM_SYNC_[A-Za-z0-9_]+)\s*=")


class Aborted(Exception):
    """The user ended the questions (end of input or Ctrl+C)."""


# --- values ------------------------------------------------------------------------------


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
    if field.kind == "ae":
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


def existing_env(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The DICOM_SYNC_* values and the node names (comments) of an existing ``.env``."""
    if not path.is_file():
        return {}, {}
    values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    names = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = NAME_COMMENT.match(line)
        if match:
            names[f"{match[1]}_name"] = match[2]
    return values, names


def default_for(field: Field, env: dict[str, str], names: dict[str, str], values: dict) -> str:
    """What Enter accepts: the ``.env`` value, else the built-in default."""
    if field.kind == "name":
        return names.get(field.key, "")
    if field.kind == "destination":
        current = env.get(MOVE_DESTINATION, "").strip()
        old_local = env.get(LOCAL_AE, "").strip()
        return current if current and current != old_local else values.get("local_ae", "")
    value = env.get(field.variable or "", "")
    if value.strip():
        return value
    if field.key == "calling_ae":
        return DEFAULT_CALLING_AE
    if field.kind == "timezone":
        return machine_zone_name()
    return ""


# --- questions ---------------------------------------------------------------------------


def has_terminal() -> bool:
    """Whether there is someone to ask: stdin is a terminal."""
    return sys.stdin is not None and sys.stdin.isatty()


def ask(prompt: str) -> str:
    try:
        return input(prompt).strip()
    except (EOFError, KeyboardInterrupt):
        print()
        raise Aborted from None


def ask_value(field: Field, default: str, convert: Callable[[str], str]) -> str:
    """Ask until the answer passes its check; Enter takes the default."""
    while True:
        shown = f" [{default}]" if default else ""
        answer = ask(f"  {field.label}{shown}: ") or default
        try:
            return convert(answer)
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"  ! {problem}; try again")


def ask_yes_no(question: str) -> bool:
    return ask(f"{question} [y/N] ").lower() in ("y", "yes", "j", "ja")


# --- dicom_mover's dicom_config.json -----------------------------------------------------


def _describe(data: object) -> str:
    if not isinstance(data, dict):
        return repr(data)
    return f"{data.get('name', '')!s} {data.get('ae_title')}@{data.get('ip_address')}:" + str(
        data.get("port")
    )


def _node_checks(
    role: str, path: str, data: object, problems: list[str]
) -> list[tuple[Field, str, object]]:
    """(field, JSON path, value) of one node; what is missing goes to ``problems``."""
    if not isinstance(data, dict):
        problems.append(f"{path}={data!r} is not an object with ae_title, ip_address, port")
        return []
    checks: list[tuple[Field, str, object]] = []
    for json_key, suffix in (("name", "name"), ("ae_title", "ae"), ("ip_address", "host")):
        checks.append((BY_KEY[f"{role}_{suffix}"], f"{path}.{json_key}", data.get(json_key)))
    checks.append((BY_KEY[f"{role}_port"], f"{path}.port", data.get("port")))
    for _, source, _ in checks[1:]:
        if source.rsplit(".", 1)[1] not in data:
            problems.append(f"{source} is missing")
    return [c for c in checks if c[1].rsplit(".", 1)[1] in data or c[0].kind == "name"]


def choose_remote(remotes: dict, wanted: str | None, file: str) -> tuple[str, bool]:
    """The key of the remote to sync from, ``wanted`` (a key or a name) or asked; and whether
    it was asked."""
    keys = list(remotes)
    listing = ", ".join(
        f"{k} ({remotes[k].get('name')})"
        if isinstance(remotes[k], dict) and remotes[k].get("name") not in (None, k)
        else k
        for k in keys
    )
    if wanted is not None:
        for key in keys:
            name = remotes[key].get("name") if isinstance(remotes[key], dict) else None
            if wanted.strip().lower() in (key.lower(), str(name).strip().lower()):
                return key, False
        raise ConfigError(
            [f"--remote-name={wanted!r} is not a remote in {file}; the choices: {listing}"]
        )
    if len(keys) == 1:
        return keys[0], False
    if not has_terminal():
        raise ConfigError(
            [
                f"{file} has {len(keys)} remote PACS and no terminal to ask on: "
                f"choose one with --remote-name; the choices: {listing}"
            ]
        )
    print(f"{file} has {len(keys)} remote PACS:")
    for number, key in enumerate(keys, 1):
        print(f"  {number}) {key}: {_describe(remotes[key])}")
    while True:
        answer = ask(f"Which one to sync from? [1-{len(keys)}]: ")
        if answer.isdigit() and 1 <= int(answer) <= len(keys):
            return keys[int(answer) - 1], True
        if answer in remotes:
            return answer, True
        print(f"  ! {answer!r} is not a number from 1 to {len(keys)}; try again")


def import_values(
    file: str, wanted_remote: str | None, skip: set[str]
) -> tuple[dict[str, str], bool]:
    """The checked values of the local and the chosen remote of a dicom_config.json (but not
    those in ``skip``), and whether choosing the remote asked a question. Every bad field is
    reported at once, named by its JSON path."""
    try:
        data = json.loads(Path(file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"--import={file!r}: cannot read it ({exc.strerror or exc})"]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError([f"--import={file!r} is not a JSON file ({exc})"]) from None
    if not isinstance(data, dict) or "local" not in data:
        raise ConfigError([f"{file}: no 'local' node: not a dicom_mover dicom_config.json"])
    if isinstance(data.get("remotes"), dict) and data["remotes"]:
        key, asked = choose_remote(data["remotes"], wanted_remote, file)
        remote_path, remote = f"remotes.{key}", data["remotes"][key]
    elif "remote" in data:
        key, asked = choose_remote({"remote": data["remote"]}, wanted_remote, file)
        remote_path, remote = "remote", data["remote"]
    else:
        raise ConfigError([f"{file}: no 'remote' or 'remotes' node: nothing to sync from"])
    problems: list[str] = []
    checks: list[tuple[Field, str, object]] = []
    for role, path, node in (("local", "local", data["local"]), ("remote", remote_path, remote)):
        checks += _node_checks(role, path, node, problems)
    if remote_path.startswith("remotes.") and isinstance(remote, dict):
        if remote.get("name") in (None, ""):
            checks.append((BY_KEY["remote_name"], f"{remote_path}.name", key))
        # dicom_mover: how this remote knows the local PACS, i.e. the C-MOVE destination.
        local_config = remote.get("local_config")
        if isinstance(local_config, dict) and "ae_title" in local_config:
            checks.append(
                (
                    BY_KEY["move_destination"],
                    f"{remote_path}.local_config.ae_title",
                    local_config["ae_title"],
                )
            )
    try:
        values = check_all([c for c in checks if c[0].key not in skip])
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return values, asked


# --- .env --------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z0-9_.:/+@,%-]*")


def quote(value: str) -> str:
    """``value`` as python-dotenv (used by dicom-sync and dagster) reads it back: bare when
    plain, else in single quotes, where it decodes only ``\\\\`` and ``\\'`` (double quotes
    would also expand escapes). ``${`` is expanded in any quotes: :func:`check` refuses it."""
    if _PLAIN.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def env_text(old: str, variables: dict[str, str], names: dict[str, str]) -> str:
    """``old`` with ``variables`` replaced where they are, and the rest appended.

    ``names`` (role -> name) are comments ``# <role> PACS name: ...``, replaced where they are
    or put just above the node's AE title. Every other line is kept as it was.
    """
    lines = old.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n"
    has_comment = {m[1] for m in map(NAME_COMMENT.match, lines) if m}
    comment_above = {LOCAL_AE: "local", REMOTE_AE: "remote"}
    done: set[str] = set()
    out: list[str] = []

    def comment(role: str) -> list[str]:
        done.add(role)
        return [f"# {role} PACS name: {names[role]}\n"] if names.get(role) else []

    for line in lines:
        name_match = NAME_COMMENT.match(line)
        env_match = ENV_LINE.match(line)
        if name_match and name_match[1] in names:
            if name_match[1] not in done:
                out += comment(name_match[1])
            continue  # a repeated name comment goes
        if env_match and env_match[1] in variables:
            key = env_match[1]
            role = comment_above.get(key)
            if role and role not in has_comment and role not in done:
                out += comment(role)
            prefix = "export " if line.lstrip().startswith("export") else ""
            out.append(f"{prefix}{key}={quote(variables[key])}\n")
            done.add(key)
            continue
        out.append(line)
    added = [key for key in WRITE_ORDER if key in variables and key not in done]
    added += [key for key in variables if key not in WRITE_ORDER and key not in done]
    if added:
        if out and out[-1].strip():
            out.append("\n")
        if not old:
            out.append("# dicom-sync settings (`dicom-sync configure`; see .env.example)\n")
        for key in added:
            role = comment_above.get(key)
            if role and role not in done:
                out += comment(role)
            if key == MOVE_DESTINATION:
                out.append("# AE title the remote sends C-MOVEs to; empty: the local AE title\n")
            if key == TIMEZONE:
                out.append("# IANA zone in which the PACS write StudyDate/StudyTime\n")
            out.append(f"{key}={quote(variables[key])}\n")
    return "".join(out)


def write_env(path: Path, text: str) -> None:
    """Replace ``path`` atomically, keeping its permissions (and a symlink's target). The
    temporary file is made with mkstemp (O_EXCL: a link planted in its place is not followed)."""
    target = path.resolve() if path.is_symlink() else path
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if target.exists():  # else it stays 0600, as mkstemp made it
            os.chmod(temporary, target.stat().st_mode & 0o7777)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# --- the C-ECHO --------------------------------------------------------------------------


def echo_nodes(settings: SyncSettings) -> list[tuple[DicomNode, bool, str]]:
    """C-ECHO the remote and the local node as ``settings.calling_ae``: (node, ok, verdict)."""
    from .dicom import DicomError, open_session

    results = []
    for node in (settings.remote, settings.local):
        started = time.monotonic()
        try:
            with open_session(node, settings.calling_ae, settings.timeouts) as session:
                status = session.echo()
        except (DicomError, OSError) as exc:
            results.append((node, False, f"FAILED - {getattr(exc, 'reason', exc)}"))
            continue
        milliseconds = (time.monotonic() - started) * 1000
        verdict = "OK" if status == 0 else f"answered with status 0x{status:04X}"
        results.append((node, status == 0, f"{verdict} ({milliseconds:.0f} ms)"))
    return results


# --- the command -------------------------------------------------------------------------


def _settings(values: dict[str, str]) -> SyncSettings:
    """The settings to C-ECHO with; TLS files come from the environment (and .env, which
    `dicom-sync` has loaded), since configure does not ask for them."""
    tls = {role: tuple(map(os.environ.get, TLS_VARIABLES[role])) for role in TLS_VARIABLES}
    return settings_from_values(
        remote=(values["remote_ae"], values["remote_host"], values["remote_port"], *tls["remote"]),
        local=(values["local_ae"], values["local_host"], values["local_port"], *tls["local"]),
        calling_ae=values["calling_ae"],
        move_destination=values["move_destination"],
        timezone=values["timezone"],
    )


def _print_summary(values: dict[str, str], path: Path) -> None:
    print(f"\nSettings for {path}:")
    for role in ("local", "remote"):
        name = f" ({values[f'{role}_name']})" if values[f"{role}_name"] else ""
        node = f"{values[f'{role}_ae']}@{values[f'{role}_host']}:{values[f'{role}_port']}"
        print(f"  {role} PACS{name}: {node}")
    print(
        f"  calling AE {values['calling_ae']}, move destination {values['move_destination']}, "
        f"time zone {values['timezone']}"
    )


def _configure(args: argparse.Namespace) -> int:
    path = Path.cwd() / ENV_FILE
    if path.exists() and not path.is_file():
        raise ConfigError([f"{path} exists and is not a file"])
    terminal = has_terminal()
    # 1. Flags: all checked at once, before anything else.
    flags = {f.key: getattr(args, f.key) for f in FIELDS if getattr(args, f.key) is not None}
    if args.import_file is not None:
        flags.pop("remote_name", None)  # with --import it chooses the remote
    # (An empty move destination or time zone means the default: the local AE, this zone.)
    values = check_all([(BY_KEY[key], BY_KEY[key].flag, value) for key, value in flags.items()])
    # 2. dicom_mover's file: flags win over it.
    imported: dict[str, str] = {}
    asked = False
    if args.import_file is not None:
        imported, asked = import_values(args.import_file, args.remote_name, set(values))
        if "calling_ae" not in values:
            print(
                "Note: dicom_mover called the PACS as QUERY_CLIENT; if they only answer known "
                "callers, register the calling AE below there, or pass --calling-ae QUERY_CLIENT."
            )
    known = {**imported, **values}
    missing = [f for f in FIELDS if f.required and f.key not in known]
    old_env, old_names = existing_env(path)
    interactive = terminal and (bool(missing) or asked)
    # 3. No terminal: what flags and the file do not give must be in .env, which needs --force.
    if not interactive:
        problems = []
        if path.exists() and not args.force:
            problems.append(
                f"{path} exists: pass --force to update it (other lines are kept)"
                + ("" if terminal else ", or run `dicom-sync configure` in a terminal")
            )
        if not terminal:
            unset = [f.flag for f in missing if not old_env.get(f.variable or "", "").strip()]
            if unset:
                problems.append(
                    "no terminal to ask on and not enough flags: missing "
                    + ", ".join(unset)
                    + " (or --import dicom_config.json, or run it in a terminal)"
                )
        if problems:
            raise ConfigError(problems)
    # 4. The rest: asked, or taken from .env / the defaults.
    if interactive:
        print("=== dicom-sync configuration ===")
        print(f"Writes {path}. Enter keeps the value in [brackets].")
    for title, keys in SECTIONS:
        if interactive:
            print(f"\n{title}")
        for key in keys:
            field = BY_KEY[key]
            if key in known:
                if key == "move_destination" and not known[key].strip():
                    known[key] = known["local_ae"]
                if interactive:
                    print(f"  {field.label}: {known[key]} (given)")
                continue
            default = default_for(field, old_env, old_names, known)

            def convert(raw: str, field: Field = field) -> str:
                return check(field, field.variable or field.flag, raw, known.get("local_ae", ""))

            if interactive:
                known[key] = ask_value(field, default, convert)
            else:
                source = field.flag if field.variable is None else field.variable
                if field.variable and old_env.get(field.variable, "").strip():
                    source = f"{source} (in {ENV_FILE})"
                known[key] = check(field, source, default, known.get("local_ae", ""))
    settings = _settings(known)
    _print_summary(known, path)
    # 5. Write .env, never replacing one without consent.
    if path.exists() and not args.force and not ask_yes_no(f"\n{path} exists: update .env?"):
        print(f"Left {path} unchanged.")
        return EXIT_CONFIG
    variables = {f.variable: known[f.key] for f in FIELDS if f.variable}
    if variables[MOVE_DESTINATION] == variables[LOCAL_AE]:
        variables[MOVE_DESTINATION] = ""  # empty: follows the local AE title
    old_text = path.read_text(encoding="utf-8") if path.exists() else ""
    names = {"local": known["local_name"], "remote": known["remote_name"]}
    write_env(path, env_text(old_text, variables, names))
    print(f"{'Updated' if old_text else 'Wrote'} {path}.")
    for variable, value in variables.items():
        outside = os.environ.get(variable)
        if outside is not None and outside not in (old_env.get(variable), value):
            print(f"Warning: {variable}={outside!r} is set in the environment and wins over .env.")
    # 6. Does each node answer?
    if args.no_echo:
        print("C-ECHO skipped (--no-echo); check later with `dicom-sync echo`.")
        return EXIT_OK
    print(f"\nC-ECHO as {settings.calling_ae}:")
    results = echo_nodes(settings)
    for node, _, text in results:
        print(f"  {node}: {text}")
    failed = [node for node, ok, _ in results if not ok]
    if failed:
        print(
            f"\n{len(failed)} of {len(results)} nodes did not answer. Check that each runs at that "
            f"host and port, that no firewall is in the way, and that it knows the calling AE "
            f"{settings.calling_ae!r}. {ENV_FILE} was written anyway; once fixed, check with "
            "`dicom-sync echo`."
        )
    else:
        print("Both nodes answered.")
    print(
        f"C-ECHO does not test C-MOVE: the remote must also know the move destination "
        f"{settings.destination!r}, with the host and port at which it reaches the local PACS "
        f"(here {settings.local.host}:{settings.local.port})."
    )
    return EXIT_FAILED if failed else EXIT_OK


def cmd_configure(args: argparse.Namespace) -> int:
    """Exit code 0: written and both nodes answered; 1: a node did not; 2: nothing written."""
    try:
        return _configure(args)
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Aborted:
        print(f"Stopped; {ENV_FILE} unchanged.", file=sys.stderr)
        return EXIT_CONFIG


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for field in FIELDS:
        metavar = {"port": "PORT", "name": "TEXT", "host": "HOST", "timezone": "ZONE"}
        text = field.help
        if field.key == "remote_name":
            text += "; with --import: which of its remotes (key or name)"
        parser.add_argument(field.flag, help=text, metavar=metavar.get(field.kind, "AE"))
    parser.add_argument(
        "--import",
        dest="import_file",
        metavar="JSON",
        help="read dicom_mover's dicom_config.json (with several remotes, --remote-name "
        "chooses one)",
    )
    parser.add_argument(
        "--force", action="store_true", help="update an existing .env without asking"
    )
    parser.add_argument("--no-echo", action="store_true", help="do not C-ECHO the nodes at the end")


def add_parser(commands) -> argparse.ArgumentParser:
    """Register ``configure`` on the ``dicom-sync`` subparsers."""
    parser = commands.add_parser(
        "configure",
        help="write .env (asked, from flags or from dicom_mover's config), then C-ECHO",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=cmd_configure)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m dicom_sync_dagster.configure``: the subcommand on its own."""
    parser = argparse.ArgumentParser(
        prog="dicom-sync configure",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return cmd_configure(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
