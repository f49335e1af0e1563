"""The ``.env`` file `dicom-sync configure` writes: read what is there, update it in place
(other lines kept), quote values so every .env reader reads them back exactly, replace it
atomically."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

from dotenv import dotenv_values

from .. import options as o
from ..settings import (
    CALLING_AE,
    LOCAL_AE,
    LOCAL_HOST,
    LOCAL_PORT,
    REMOTE_AE,
    REMOTE_HOST,
    REMOTE_PORT,
)

WRITE_ORDER: tuple[str, ...] = (CALLING_AE, REMOTE_AE, REMOTE_HOST, REMOTE_PORT, LOCAL_AE)
WRITE_ORDER += (LOCAL_HOST, LOCAL_PORT, o.MOVE_DESTINATION.variable, o.TIMEZONE.variable)
# Written above a variable that is added: what it means (the model's description).
COMMENTS = {x.variable: x.description.rstrip(".") for x in (o.MOVE_DESTINATION, o.TIMEZONE)}
NAME_COMMENT = re.compile(r"^#\s*(local|remote) PACS name:[ \t]?(.*?)\s*$")
ENV_LINE = re.compile(r"^\s*(?:export\s+)?(DICOM_SYNC_[A-Za-z0-9_]+)\s*=")


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
            if key in COMMENTS:
                out.append(f"# {COMMENTS[key]}\n")
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
