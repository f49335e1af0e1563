"""The questions of `dicom-sync configure`: asked on the terminal, checked as typed."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..settings import ConfigError


class Aborted(Exception):
    """The user ended the questions (end of input or Ctrl+C)."""


def has_terminal() -> bool:
    """Whether there is someone to ask: stdin is a terminal."""
    return sys.stdin is not None and sys.stdin.isatty()


def ask(prompt: str) -> str:
    try:
        return input(prompt).strip()
    except (EOFError, KeyboardInterrupt):
        print()
        raise Aborted from None


def ask_value(label: str, default: str, convert: Callable[[str], str]) -> str:
    """Ask until the answer passes its check; Enter takes the default."""
    while True:
        shown = f" [{default}]" if default else ""
        answer = ask(f"  {label}{shown}: ") or default
        try:
            return convert(answer)
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"  ! {problem}; try again")


def ask_yes_no(question: str) -> bool:
    return ask(f"{question} [y/N] ").lower() in ("y", "yes", "j", "ja")
