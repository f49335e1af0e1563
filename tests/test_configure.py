"""`dicom-sync configure`: questions, flags, an existing .env, dicom_mover's config, the C-ECHO.

How the terminal is faked: the command decides "is there someone to ask?" with
``sys.stdin.isatty()`` and asks with ``input()``. The tests swap ``sys.stdin`` for a StringIO
that says whether it is a terminal, and ``builtins.input`` for a feeder that hands out scripted
answers and records every prompt; a prompt nobody scripted fails the test. That keeps them
in-process, fast and deterministic (a pty would exercise the same two calls, only slower).
One test runs the module as a real process with stdin from /dev/null to show it does not hang.
"""

from __future__ import annotations

import argparse
import builtins
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dotenv import dotenv_values

from dicom_sync_dagster import configure
from dicom_sync_dagster.settings import settings_from_env

REQUIRED = [
    *("--local-ae", "LOCALPACS", "--local-host", "127.0.0.1", "--local-port", "4242"),
    *("--remote-ae", "REMOTEPACS", "--remote-host", "10.0.0.5", "--remote-port", "104"),
]
REQUIRED_FLAGS = [
    "--local-ae",
    "--local-host",
    "--local-port",
    "--remote-ae",
    "--remote-host",
    "--remote-port",
]
WRITTEN = {
    "DICOM_SYNC_CALLING_AE": "DICOMSYNC",
    "DICOM_SYNC_REMOTE_AE": "REMOTEPACS",
    "DICOM_SYNC_REMOTE_HOST": "10.0.0.5",
    "DICOM_SYNC_REMOTE_PORT": "104",
    "DICOM_SYNC_LOCAL_AE": "LOCALPACS",
    "DICOM_SYNC_LOCAL_HOST": "127.0.0.1",
    "DICOM_SYNC_LOCAL_PORT": "4242",
    "DICOM_SYNC_MOVE_DESTINATION": "",  # empty: the local AE title
    "DICOM_SYNC_TIMEZONE": "Europe/Berlin",
}
OLD_SHAPE = {
    "local": {
        "name": "Befund",
        "ae_title": "kleditsch",
        "ip_address": "192.168.1.178",
        "port": 11112,
    },
    "remote": {"name": "Telradko", "ae_title": "TZK", "ip_address": "10.1.15.30", "port": 4050},
}
NEW_SHAPE = {
    "local": OLD_SHAPE["local"],
    "remotes": {
        "telradko": {**OLD_SHAPE["remote"], "transfer_syntax": "JPEG2000Lossless"},
        "gerald": {
            "name": "Gerald PACS",
            "ae_title": "AYCAN_BMBA_Q",
            "ip_address": "192.168.2.15",
            "port": "7401",
            "local_config": {"ae_title": "ARZT_4", "ip_address": "192.168.222.20", "port": 11112},
        },
    },
}


def run(argv: list[str]) -> int:
    """`dicom-sync configure ARGV` through argparse subparsers, as cli.parser() will wire it."""
    top = argparse.ArgumentParser(prog="dicom-sync")
    configure.add_parser(top.add_subparsers(dest="command", required=True))
    args = top.parse_args(["configure", *argv])
    return args.handler(args)


class FakeStdin(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class Terminal:
    """Scripted answers for ``input()``; ``prompts`` records every question asked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.answers: list[str] = []
        self.prompts: list[str] = []
        self.then_eof = False
        monkeypatch.setattr(builtins, "input", self.input)
        self.tty(False)

    def tty(self, present: bool) -> Terminal:
        self.monkeypatch.setattr(sys, "stdin", FakeStdin(present))
        return self

    def answer(self, *answers: str, then_eof: bool = False) -> Terminal:
        """A terminal that answers ``answers`` in turn (then end of input, if ``then_eof``)."""
        self.tty(True)
        self.answers, self.prompts, self.then_eof = list(answers), [], then_eof
        return self

    def input(self, prompt: str = "") -> str:
        self.prompts.append(prompt)
        if self.answers:
            return self.answers.pop(0)
        if self.then_eof:
            raise EOFError
        raise AssertionError(f"unexpected prompt {prompt!r}")


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """An empty working folder, no DICOM_SYNC_* in the environment, this machine in Berlin."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for key in list(os.environ):
        if key.startswith("DICOM_SYNC_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TZ", "Europe/Berlin")  # machine_zone_name() reads TZ first
    return work


@pytest.fixture
def terminal(monkeypatch, folder) -> Terminal:
    """No terminal and no answers until a test calls ``answer``."""
    return Terminal(monkeypatch)


@pytest.fixture
def no_network(monkeypatch) -> None:
    def echo_nodes(settings):
        raise AssertionError("C-ECHO sent")

    monkeypatch.setattr(configure, "echo_nodes", echo_nodes)


def env(folder: Path) -> dict[str, str | None]:
    return dict(dotenv_values(folder / ".env"))


def write_json(folder: Path, data: object, name: str = "dicom_config.json") -> str:
    (folder / name).write_text(json.dumps(data, indent=2))
    return name


# --- questions ---------------------------------------------------------------------------


def test_questions_write_env_and_a_bad_port_is_asked_again(folder, terminal, capsys):
    terminal.answer(
        *("Local PACS", "LOCALPACS", "127.0.0.1", "abc", "4242"),  # a bad port, then a good one
        *("CT Room 1", "REMOTEPACS", "10.0.0.5", "104"),
        *("", "", ""),  # Enter: calling AE, move destination and time zone keep the default
    )

    code = run(["--no-echo"])

    out = capsys.readouterr().out
    assert code == 0
    assert "DICOM_SYNC_LOCAL_PORT='abc' is not a TCP port (a whole number 1-65535)" in out
    assert [p for p in terminal.prompts if "Port" in p] == ["  Port: "] * 3
    assert terminal.prompts[-3:] == [
        "  Calling AE title of this tool (both PACS must know it) [DICOMSYNC]: ",
        "  Move destination (AE title the remote sends the images to) [LOCALPACS]: ",
        "  Time zone of the PACS' StudyDate/StudyTime (IANA name) [Europe/Berlin]: ",
    ]
    assert env(folder) == WRITTEN
    text = (folder / ".env").read_text()
    assert "# local PACS name: Local PACS\nDICOM_SYNC_LOCAL_AE=LOCALPACS\n" in text
    assert "# remote PACS name: CT Room 1\nDICOM_SYNC_REMOTE_AE=REMOTEPACS\n" in text
    settings = settings_from_env(env(folder))  # what `dicom-sync run` will read
    assert (settings.destination, settings.timezone_name) == ("LOCALPACS", "Europe/Berlin")


def test_questions_offer_the_env_values_and_update_only_after_yes(folder, terminal, capsys):
    old = textwrap.dedent(
        """\
        # our site
        # remote PACS name: Old CT
        DICOM_SYNC_REMOTE_AE=OLDCT
        DICOM_SYNC_REMOTE_HOST=10.0.0.9
        DICOM_SYNC_REMOTE_PORT=104
        DICOM_SYNC_LOCAL_AE=LOCALPACS
        DICOM_SYNC_LOCAL_HOST=127.0.0.1
        DICOM_SYNC_LOCAL_PORT=4242
        DICOM_SYNC_MODE=all
        DICOM_SYNC_TIMEZONE=Europe/Vienna
        """
    )
    (folder / ".env").write_text(old)
    enter_but_remote_ae = ("", "", "", "", "", "NEWCT", "", "", "", "", "")

    terminal.answer(*enter_but_remote_ae, "")  # Enter at "update .env? [y/N]": no
    assert run(["--no-echo"]) == 2
    assert terminal.prompts[-1].endswith(".env exists: update .env? [y/N] ")
    assert "Left " in capsys.readouterr().out
    assert (folder / ".env").read_text() == old

    terminal.answer(*enter_but_remote_ae, "y")
    assert run(["--no-echo"]) == 0
    assert "  Name (free text, e.g. Remote PACS) [Old CT]: " in terminal.prompts
    assert "  AE title [OLDCT]: " in terminal.prompts
    assert terminal.prompts[-2].endswith("[Europe/Vienna]: ")
    assert (folder / ".env").read_text() == old.replace("=OLDCT", "=NEWCT") + textwrap.dedent(
        """
        DICOM_SYNC_CALLING_AE=DICOMSYNC
        # AE title the remote sends C-MOVEs to; empty: the local AE title
        DICOM_SYNC_MOVE_DESTINATION=
        """
    )


def test_end_of_input_stops_without_writing(folder, terminal, capsys):
    terminal.answer("Local PACS", "LOCALPACS", then_eof=True)

    assert run([]) == 2
    assert "Stopped; .env unchanged." in capsys.readouterr().err
    assert not (folder / ".env").exists()


# --- flags -------------------------------------------------------------------------------


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "no-terminal"])
def test_flags_write_env_without_a_question(folder, terminal, no_network, tty):
    terminal.tty(tty)  # no answers scripted: any question fails the test

    assert run([*REQUIRED, "--no-echo"]) == 0
    assert terminal.prompts == []
    assert env(folder) == WRITTEN


def test_every_flag_and_values_that_need_quoting(folder, terminal, no_network):
    code = run(
        [
            *REQUIRED,
            *("--local-name", "Befund\nPACS", "--remote-name", "CT"),
            *("--calling-ae", "SYNC 1", "--move-destination", "STORE#2", "--timezone", "UTC"),
            "--no-echo",
        ]
    )

    assert code == 0
    values = env(folder)
    assert values["DICOM_SYNC_CALLING_AE"] == "SYNC 1"  # quoted, read back whole
    assert values["DICOM_SYNC_MOVE_DESTINATION"] == "STORE#2"  # not cut at '#'
    assert values["DICOM_SYNC_TIMEZONE"] == "UTC"
    assert "# local PACS name: Befund PACS\n" in (folder / ".env").read_text()  # one line
    assert settings_from_env(values).destination == "STORE#2"


@pytest.mark.parametrize("value", ["MY PACS", "A#B", "it's", 'say "hi"', "$HOME", "a=b;c"])
def test_quoted_values_read_back_unchanged(tmp_path, value):
    (tmp_path / ".env").write_text(f"X={configure.quote(value)}\n")
    assert dotenv_values(tmp_path / ".env")["X"] == value


def test_bad_flag_values_exit_2_naming_flag_and_value(folder, terminal, no_network, capsys):
    argv = [
        *REQUIRED,
        "--remote-port",
        "70000",
        "--calling-ae",
        "A" * 17,
        "--timezone",
        "Mars/Base",
    ]

    assert run(argv) == 2

    err = capsys.readouterr().err
    assert "--remote-port='70000' is not a TCP port" in err
    assert f"--calling-ae='{'A' * 17}' is 17 characters long" in err
    assert "--timezone='Mars/Base' is not an IANA time zone" in err
    assert not (folder / ".env").exists()
    assert terminal.prompts == []


def test_bad_flag_is_refused_before_any_question(folder, terminal, no_network, capsys):
    terminal.answer()  # a terminal, but nothing may be asked

    assert run(["--local-port", "0"]) == 2
    assert "--local-port='0' is not a TCP port" in capsys.readouterr().err


# --- an existing .env --------------------------------------------------------------------

EXISTING = (
    "# site notes: call Jane before changing anything\n"
    "OTHER_TOOL_TOKEN=keep-me\n"
    "DICOM_SYNC_REMOTE_AE=OLDREMOTE\n"
    "\n"
    "# DICOM_SYNC_REMOTE_PORT=11112 (commented out: stays)\n"
    "export DICOM_SYNC_LOCAL_PORT=1111\n"
    "DICOM_SYNC_MODE=fewer_than\n"
    "DICOM_SYNC_IMAGE_LIMIT=300\n"
    "DICOM_SYNC_REMOTE_AE=DUPLICATE"  # no final newline
)


def test_existing_env_is_not_replaced_without_force(folder, terminal, no_network, capsys):
    (folder / ".env").write_text(EXISTING)

    assert run([*REQUIRED, "--no-echo"]) == 2

    assert "pass --force to update it" in capsys.readouterr().err
    assert (folder / ".env").read_text() == EXISTING


def test_force_keeps_every_other_line_and_replaces_keys_in_place(folder, terminal, no_network):
    (folder / ".env").write_text(EXISTING)
    (folder / ".env").chmod(0o600)

    assert run([*REQUIRED, "--remote-name", "CT", "--force", "--no-echo"]) == 0

    assert (folder / ".env").read_text() == (
        "# site notes: call Jane before changing anything\n"
        "OTHER_TOOL_TOKEN=keep-me\n"
        "# remote PACS name: CT\n"
        "DICOM_SYNC_REMOTE_AE=REMOTEPACS\n"
        "\n"
        "# DICOM_SYNC_REMOTE_PORT=11112 (commented out: stays)\n"
        "export DICOM_SYNC_LOCAL_PORT=4242\n"
        "DICOM_SYNC_MODE=fewer_than\n"
        "DICOM_SYNC_IMAGE_LIMIT=300\n"
        "DICOM_SYNC_REMOTE_AE=REMOTEPACS\n"
        "\n"
        "DICOM_SYNC_CALLING_AE=DICOMSYNC\n"
        "DICOM_SYNC_REMOTE_HOST=10.0.0.5\n"
        "DICOM_SYNC_REMOTE_PORT=104\n"
        "DICOM_SYNC_LOCAL_AE=LOCALPACS\n"
        "DICOM_SYNC_LOCAL_HOST=127.0.0.1\n"
        "# AE title the remote sends C-MOVEs to; empty: the local AE title\n"
        "DICOM_SYNC_MOVE_DESTINATION=\n"
        "# IANA zone in which the PACS write StudyDate/StudyTime; empty: this machine's zone\n"
        "DICOM_SYNC_TIMEZONE=Europe/Berlin\n"
    )
    assert (folder / ".env").stat().st_mode & 0o777 == 0o600


def test_force_takes_what_the_flags_leave_out_from_env(folder, terminal, no_network, capsys):
    run([*REQUIRED, "--remote-name", "CT", "--timezone", "Europe/Vienna", "--no-echo"])
    before = (folder / ".env").read_text()

    assert run(["--remote-port", "105", "--force", "--no-echo"]) == 0

    assert (folder / ".env").read_text() == before.replace("PORT=104", "PORT=105")
    (folder / ".env").write_text(before.replace("PORT=4242", "PORT=port"))
    assert run(["--remote-port", "105", "--force", "--no-echo"]) == 2
    assert "DICOM_SYNC_LOCAL_PORT (in .env)='port' is not a TCP port" in capsys.readouterr().err


def test_warns_when_the_environment_overrides_env(
    folder, terminal, no_network, monkeypatch, capsys
):
    monkeypatch.setenv("DICOM_SYNC_REMOTE_PORT", "999")

    assert run([*REQUIRED, "--no-echo"]) == 0
    assert "DICOM_SYNC_REMOTE_PORT='999' is set in the environment" in capsys.readouterr().out


# --- --import dicom_config.json ----------------------------------------------------------


def test_import_the_old_shape(folder, terminal, no_network, capsys):
    name = write_json(folder, OLD_SHAPE)

    assert run(["--import", name, "--no-echo"]) == 0

    assert terminal.prompts == []
    assert "QUERY_CLIENT" in capsys.readouterr().out  # dicom_mover's calling AE, a hint
    assert env(folder) == {
        **WRITTEN,
        "DICOM_SYNC_REMOTE_AE": "TZK",
        "DICOM_SYNC_REMOTE_HOST": "10.1.15.30",
        "DICOM_SYNC_REMOTE_PORT": "4050",
        "DICOM_SYNC_LOCAL_AE": "kleditsch",
        "DICOM_SYNC_LOCAL_HOST": "192.168.1.178",
        "DICOM_SYNC_LOCAL_PORT": "11112",
    }
    text = (folder / ".env").read_text()
    assert "# local PACS name: Befund\n" in text
    assert "# remote PACS name: Telradko\n" in text


@pytest.mark.parametrize("chosen", ["gerald", "Gerald PACS"], ids=["by key", "by name"])
def test_import_the_new_shape_with_remote_name(folder, terminal, no_network, chosen):
    name = write_json(folder, NEW_SHAPE)

    assert run(["--import", name, "--remote-name", chosen, "--calling-ae", "QR", "--no-echo"]) == 0

    values = env(folder)
    assert values["DICOM_SYNC_REMOTE_AE"] == "AYCAN_BMBA_Q"
    assert values["DICOM_SYNC_REMOTE_PORT"] == "7401"
    assert values["DICOM_SYNC_CALLING_AE"] == "QR"  # a flag wins over the file
    # dicom_mover's local_config: how this remote knows the local PACS, its C-MOVE target
    assert values["DICOM_SYNC_MOVE_DESTINATION"] == "ARZT_4"
    assert "# remote PACS name: Gerald PACS\n" in (folder / ".env").read_text()


def test_import_several_remotes_asks_which_one(folder, terminal, capsys):
    name = write_json(folder, NEW_SHAPE)
    terminal.answer("3", "2", "", "")  # 3 is no choice; then Enter at calling AE and zone

    assert run(["--import", name, "--no-echo"]) == 0

    out = capsys.readouterr().out
    assert "  1) telradko: Telradko TZK@10.1.15.30:4050\n" in out
    assert "  2) gerald: Gerald PACS AYCAN_BMBA_Q@192.168.2.15:7401\n" in out
    assert "'3' is not a number from 1 to 2" in out
    assert terminal.prompts[:2] == ["Which one to sync from? [1-2]: "] * 2
    assert env(folder)["DICOM_SYNC_REMOTE_AE"] == "AYCAN_BMBA_Q"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "has 2 remote PACS and no terminal to ask on: choose one with --remote-name"),
        (["--remote-name", "ct"], "--remote-name='ct' is not a remote in dicom_config.json"),
    ],
    ids=["no terminal", "unknown name"],
)
def test_import_remote_choice_errors_list_the_choices(
    folder, terminal, no_network, capsys, argv, message
):
    name = write_json(folder, NEW_SHAPE)

    assert run(["--import", name, *argv]) == 2

    err = capsys.readouterr().err
    assert message in err
    assert "; the choices: telradko (Telradko), gerald (Gerald PACS)\n" in err
    assert not (folder / ".env").exists()


def test_import_bad_fields_exit_2_naming_field_and_value(folder, terminal, no_network, capsys):
    local = {k: v for k, v in OLD_SHAPE["local"].items() if k != "ae_title"}
    remotes = {"ct": {"ae_title": "CT", "ip_address": " ", "port": "abc"}, "mr": "garbage"}
    name = write_json(folder, {"local": local, "remotes": remotes})

    assert run(["--import", name, "--remote-name", "ct"]) == 2

    err = capsys.readouterr().err
    assert "local.ae_title is missing" in err
    assert "remotes.ct.port='abc' is not a TCP port" in err
    assert "remotes.ct.ip_address is not set" in err
    assert not (folder / ".env").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read it"),
        ("{not json", "is not a JSON file"),
        ('{"remotes": {}}', "no 'local' node"),
        ('{"local": {}, "remotes": {}}', "no 'remote' or 'remotes' node"),
        ('{"local": {}, "remote": []}', "remote=[] is not an object"),
        ('{"local": {"ae_title": 7, "ip_address": "h", "port": true}, "remote": {}}', "=7 is"),
    ],
)
def test_import_bad_files_exit_2(folder, terminal, no_network, capsys, content, message):
    if content is not None:
        (folder / "dicom_config.json").write_text(content)

    assert run(["--import", "dicom_config.json"]) == 2
    assert message in capsys.readouterr().err


# --- no terminal -------------------------------------------------------------------------


def test_no_terminal_and_missing_flags_fails_at_once_naming_them(
    folder, terminal, no_network, capsys
):
    assert run(["--local-ae", "LOCALPACS", "--remote-port", "104"]) == 2

    err = capsys.readouterr().err
    assert "no terminal to ask on and not enough flags: missing " in err
    assert "--local-host, --local-port, --remote-ae, --remote-host (or --import" in err
    assert terminal.prompts == []
    assert not (folder / ".env").exists()


def test_no_terminal_real_process_exits_instead_of_waiting(folder):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_SYNC_")}

    done = subprocess.run(
        [sys.executable, "-m", "dicom_sync_dagster.configure"],
        stdin=subprocess.DEVNULL,
        env=clean,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert "missing " + ", ".join(REQUIRED_FLAGS) in done.stderr


# --- the final C-ECHO, against real servers ------------------------------------------------


@pytest.mark.servers
def test_final_echo_says_which_node_answered(site, folder, terminal, capsys):
    values = site.env()
    argv = [
        *("--local-ae", values["DICOM_SYNC_LOCAL_AE"]),
        *("--local-host", values["DICOM_SYNC_LOCAL_HOST"]),
        *("--local-port", values["DICOM_SYNC_LOCAL_PORT"]),
        *("--remote-ae", values["DICOM_SYNC_REMOTE_AE"]),
        *("--remote-host", values["DICOM_SYNC_REMOTE_HOST"]),
        *("--remote-port", values["DICOM_SYNC_REMOTE_PORT"]),
        *("--calling-ae", values["DICOM_SYNC_CALLING_AE"]),
    ]
    remote = f"remote PACS REMOTEPACS@127.0.0.1:{site.remote.node.port}"
    local = f"local PACS LOCALPACS@127.0.0.1:{site.local.node.port}"

    assert run(argv) == 0
    out = capsys.readouterr().out
    assert f"  {remote}: OK" in out and f"  {local}: OK" in out
    assert "Both nodes answered." in out

    site.local.stop()
    assert run([*argv, "--force"]) == 1
    out = capsys.readouterr().out
    assert f"  {remote}: OK" in out
    assert f"  {local}: FAILED - cannot connect" in out
    assert "1 of 2 nodes did not answer" in out
    assert env(folder)["DICOM_SYNC_LOCAL_PORT"] == str(site.local.node.port)  # written anyway


def test_quotes_dollars_and_hashes_read_back_exactly(folder, terminal, no_network):
    """Issue 14: what configure writes is read back exactly as given, by python-dotenv (as
    dagster and dicom-sync read .env)."""
    given = {"--calling-ae": "O'B$X #1", "--move-destination": 'Q"$HOME#'}
    assert run([*REQUIRED, *[a for pair in given.items() for a in pair], "--no-echo"]) == 0

    values = env(folder)
    assert values["DICOM_SYNC_CALLING_AE"] == "O'B$X #1"
    assert values["DICOM_SYNC_MOVE_DESTINATION"] == 'Q"$HOME#'


def test_a_value_with_dollar_brace_is_refused_not_written_expanded(
    folder, terminal, no_network, capsys
):
    """Before: `--calling-ae "O'${HOME}"` was written so that it read back as O'/root (every
    .env reader expands ${...}, in any quotes)."""
    code = run([*REQUIRED, "--calling-ae", "O'${HOME}", "--no-echo"])

    assert code == 2
    assert "--calling-ae=\"O'${HOME}\" contains '${'" in capsys.readouterr().err
    assert not (folder / ".env").exists()


@pytest.mark.parametrize("value", ["a\\\\b", "a\\\\'b", "c:\\\\x y"])
def test_backslashes_read_back_unchanged(tmp_path, value):
    """Before: a value with a backslash and no quote was single-quoted unescaped: '\\\\' read
    back as one backslash."""
    (tmp_path / ".env").write_text(f"X={configure.quote(value)}\n")
    assert dotenv_values(tmp_path / ".env")["X"] == value
