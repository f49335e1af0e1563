"""`dicom-sync configure`: write the DICOM_SYNC_* settings to ``.env``, then C-ECHO both nodes.

This module is the command; :mod:`.fields` (what is asked), :mod:`.prompts` (the questions),
:mod:`.dicom_mover` (``--import``) and :mod:`.dotenv_file` (the file) do one job each.

Three ways to give the values, which can be combined (first wins):

1. flags (``--local-ae`` ...): when every required value comes from flags (or ``--import``),
   nothing is asked;
2. ``--import dicom_config.json``, the config file of the original ``dicom_mover`` tool;
3. questions on the terminal, like dicom_mover's first-run set-up, offering the values of
   an existing ``.env`` (else the built-in defaults) in [brackets].

The fields come from the settings model (:mod:`..options`; :mod:`.fields`), each value is
checked on entry with the checks of :mod:`..settings`; a bad flag or imported
field stops with exit code 2 before anything is written or sent; a bad answer is asked again.
An existing ``.env`` is updated in place (other lines kept), never replaced without consent:
a session that asked questions asks "update .env?", otherwise ``--force`` is required.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..echo import echo_nodes
from ..envfile import ENV_FILE
from ..exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from ..settings import (
    LOCAL_AE,
    MOVE_DESTINATION,
    TLS_VARIABLES,
    ConfigError,
    SyncSettings,
    settings_from_values,
)
from .dicom_mover import choose_remote, import_values
from .dotenv_file import env_text, existing_env, quote, write_env
from .fields import BY_KEY, FIELDS, SECTIONS, Field, check, check_all, default_for
from .prompts import Aborted, ask_value, ask_yes_no, has_terminal

__all__ = [  # what the command's modules offer, here for callers and tests
    "Aborted",
    "check",
    "check_all",
    "choose_remote",
    "cmd_configure",
    "echo_nodes",
    "env_text",
    "import_values",
    "main",
    "quote",
    "write_env",
]

DESCRIPTION = """\
Write the DICOM_SYNC_* settings to .env in this folder, then C-ECHO both PACS.

Values come from the flags, else from --import (dicom_mover's dicom_config.json), else are
asked on the terminal with the current .env's values (or the defaults) in [brackets]. With
every node value given by flags or --import nothing is asked; without a terminal, missing
values must be in .env. An existing .env is updated in place, other lines kept: after
questions it asks first, otherwise it needs --force.

Exit codes: 0 written and both nodes answered, 1 written but a node did not answer,
2 nothing written (bad value, missing value, .env kept)."""


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
    for title, fields in SECTIONS:
        if interactive:
            print(f"\n{title}")
        for field in fields:
            key = field.key
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
                known[key] = ask_value(field.label, default, convert)
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
