"""`dicom-sync configure --import`: the local and one remote of dicom_mover's
``dicom_config.json`` (either of its shapes), every field checked and named by its JSON path."""

from __future__ import annotations

import json
from pathlib import Path

from ..settings import ConfigError
from .fields import BY_KEY, Field, check_all
from .prompts import ask, has_terminal


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
