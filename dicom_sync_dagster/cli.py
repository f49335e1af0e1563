"""`dicom-sync`: run the sync job from a terminal, check connections, open the UI.

Runs go through the same Dagster job as the schedule, against the persistent Dagster
instance, so they appear in the UI's run history too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .envfile import load_dotenv
from .exit_codes import EXIT_BUSY, EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from .options import WINDOW_HOURS
from .routes import Route, load_routes
from .settings import IMAGE_LIMIT, MODE, ConfigError, check_selection, settings_from_env

INTERVAL_SECONDS = 60


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME, or this folder when it holds the project's dagster.yaml."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    here = Path.cwd()
    if (here / "dagster.yaml").is_file():
        os.environ["DAGSTER_HOME"] = str(here.resolve())
        return here
    raise ConfigError(
        [
            "DAGSTER_HOME is not set and this folder has no dagster.yaml: run from the project "
            "folder or set DAGSTER_HOME to an absolute path"
        ]
    )


def _run_config(args: argparse.Namespace) -> dict[str, object]:
    from .core.selection import Mode, limit_problem

    # The Launchpad's form (orchestration/launchpad.py); no flag: the route's mode and window.
    config: dict[str, object] = {"dry_run": args.dry_run}
    if args.all_series:
        config["mode"] = {Mode.all.value: {}}
    elif args.min_images is not None:
        problem = limit_problem("--min-images", args.min_images)
        if problem:
            raise ConfigError([problem])
        config["mode"] = {Mode.fewer_than.value: {"image_limit": args.min_images}}
    if args.window_hours is not None:
        problem = WINDOW_HOURS.problem("--window-hours", args.window_hours)
        if problem:
            raise ConfigError([problem])
        config.update(window_hours=args.window_hours, catch_up=False)  # exactly that window
    return config


def _failure_messages(result) -> list[str]:
    messages = []
    for event in result.all_node_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            text = error.message.strip() if error else "failed"
            if error and error.cls_name == "Failure":  # expected: its description says why
                text = text.split("Failure: ", 1)[-1]
            messages.append(f"{event.node_name}: {text}")
    return messages


def _interrupted(result) -> bool:
    """Whether Ctrl+C stopped the run: Dagster turns it into the run's or a step's failure."""
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        if error is not None and error.cls_name in (
            "DagsterExecutionInterruptedError",
            "KeyboardInterrupt",
        ):
            return True
    return False


def chosen_routes(name: str | None) -> list[Route]:
    """The routes to run: the one named, else all (validated as the code location does)."""
    routes = load_routes()
    if routes[0].from_env:  # fail on bad settings before touching Dagster or the network
        settings_from_env()
        check_selection(os.environ.get(MODE), os.environ.get(IMAGE_LIMIT))
    if name is None:
        return routes
    chosen = [route for route in routes if route.name == name]
    if not chosen:
        known = ", ".join(route.name for route in routes)
        raise ConfigError([f"--route={name!r} is not a route (routes: {known})"])
    return chosen


def run_cycle(config: dict[str, object], route: Route) -> int:
    """One run of the route's sync job; prints the seed-style summary; returns the exit code."""
    from dagster import DagsterInstance

    from .core.summary_text import format_summary
    from .definitions import defs
    from .orchestration import run_state
    from .orchestration.schedules import sync_in_progress
    from .orchestration.stale_runs import process_tags

    print(
        f"Starting sync cycle of route {route.name} at {time.strftime('%Y-%m-%d %H:%M:%S')}",
        flush=True,
    )
    with DagsterInstance.get() as instance:
        busy = sync_in_progress(instance, route.job_name)
        if busy:
            print(f"Skipped: a sync run is still in progress ({busy}).")
            return EXIT_BUSY
        run_id = str(uuid.uuid4())  # as Dagster makes them; named in the process tag
        result = (
            defs()
            .resolve_job_def(route.job_name)
            .execute_in_process(
                run_config={
                    "ops": {"start_cycle": {"config": config}},
                    "loggers": {"console": {"config": {"log_level": "INFO"}}},
                },
                instance=instance,
                raise_on_error=False,
                run_id=run_id,
                tags=process_tags(run_id),  # a run killed before it takes the lock is found dead
            )
        )
    print(f"Run {result.run_id} ({'success' if result.success else 'failed'})")
    state = run_state.take(result.run_id)
    if state is not None and state.summary is not None:  # else the failures say why it stopped
        print(format_summary(state.summary))
    for message in _failure_messages(result):
        print(f"ERROR {message}", file=sys.stderr)
    if _interrupted(result):  # the run is marked failed; Ctrl+C also ends the loop: exit 130
        raise KeyboardInterrupt
    return EXIT_OK if result.success else EXIT_FAILED


def run_routes(config: dict[str, object], routes: list[Route]) -> int:
    """One cycle of each route in turn; failed beats skipped beats ok."""
    codes = [run_cycle(config, route) for route in routes]
    return next((code for code in (EXIT_FAILED, EXIT_BUSY) if code in codes), EXIT_OK)


def cmd_run(args: argparse.Namespace) -> int:
    from .dicom.dimse_path import DimsePathError, check_early

    config = _run_config(args)
    routes = chosen_routes(args.route)
    try:  # checked before anything else; the raw path's check overlaps Dagster's start
        check_early()
    except DimsePathError as exc:
        raise ConfigError([str(exc)]) from None
    ensure_dagster_home()
    code = run_routes(config, routes)
    while not args.once:
        time.sleep(INTERVAL_SECONDS - time.time() % INTERVAL_SECONDS)
        code = run_routes(config, routes)
    return code


def cmd_echo(args: argparse.Namespace) -> int:
    from .echo import echo_nodes
    from .routes import route_settings

    ok = True
    for route in chosen_routes(args.route):
        settings = settings_from_env() if route.from_env else route_settings(route)
        prefix = "" if route.from_env else f"route {route.name}: "
        for node, answered, verdict in echo_nodes(settings):
            print(f"{prefix}{node}: {verdict}")
            ok = ok and answered
    return EXIT_OK if ok else EXIT_FAILED


def cmd_health(args: argparse.Namespace) -> int:
    """One line and a Nagios exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""
    from datetime import datetime, timezone

    from dagster import DagsterInstance

    from . import health
    from .alerts.settings import load_alert_settings

    try:
        routes = chosen_routes(args.route)
        critical = args.critical or load_alert_settings().no_check_minutes
        limits = health.Thresholds(args.warning or critical / 2, critical)
        if not 0 < limits.warning_minutes <= limits.critical_minutes:
            raise ConfigError([f"--warning={args.warning!r} must be > 0 and <= --critical"])
        ensure_dagster_home()
        with DagsterInstance.get() as instance:
            code, line = health.health_line(instance, routes, datetime.now(timezone.utc), limits)
    except ConfigError as exc:
        code, line = health.unknown_line(f"configuration: {'; '.join(exc.problems)}")
    except Exception as exc:  # the instance unreadable: the monitoring must hear of it
        code, line = health.unknown_line(f"cannot read the instance: {exc}")
    print(line)
    return code


def cmd_ui(args: argparse.Namespace) -> int:
    ensure_dagster_home()
    command = ["dagster", "dev", "-h", "127.0.0.1", "-p", str(args.port), "-w", "workspace.yaml"]
    print(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}; {' '.join(command)}")
    try:
        return subprocess.call([sys.executable, "-m", "dagster", *command[1:]])
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import default_ui_port, run_demo

    folder = Path(args.folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return run_demo(folder, args.port or default_ui_port())


CONFIGURE_HELP = "write .env (asked, from flags or from dicom_mover's config), then C-ECHO"


def _command(argv: list[str]) -> str | None:
    return next((word for word in argv if not word.startswith("-")), None)


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line; `configure`'s flags (and its module) only load for that command, so
    `dicom-sync run` imports what it runs and no more."""
    top = argparse.ArgumentParser(prog="dicom-sync", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="sync now (and every 60 s unless --once)")
    run.add_argument("--once", action="store_true", help="one cycle, then exit")
    modes = run.add_mutually_exclusive_group()
    modes.add_argument("--min-images", type=int, metavar="N", help="every series with < N images")
    modes.add_argument("--all-series", action="store_true", help="every series")
    run.add_argument(
        "--window-hours",
        type=float,
        metavar="H",
        help=f"window length (default: the route's, {WINDOW_HOURS.default:g})",
    )
    run.add_argument("--dry-run", action="store_true", help="plan and report, move nothing")
    run.add_argument("--route", help="only this route of dicom_sync.yaml (default: every route)")
    run.set_defaults(handler=cmd_run)

    echo = commands.add_parser("echo", help="C-ECHO both nodes (of every route)")
    echo.add_argument("--route", help="only this route of dicom_sync.yaml")
    echo.set_defaults(handler=cmd_echo)

    demo = commands.add_parser("demo", help="two demo PACS + the Dagster UI, no PACS of your own")
    demo.add_argument("--port", type=int, default=0, help="UI port (default 3000 or a free one)")
    demo.add_argument("--folder", default=".demo", help="where the demo keeps everything")
    demo.set_defaults(handler=cmd_demo)

    if _command(sys.argv[1:] if argv is None else argv) == "configure":
        from . import configure

        configure.add_parser(commands)
    else:
        commands.add_parser("configure", help=CONFIGURE_HELP, add_help=False)

    health = commands.add_parser(
        "health",
        help="one line and a Nagios exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) from "
        "the instance's latest runs and checks of every route",
    )
    health.add_argument("--route", help="only this route of dicom_sync.yaml")
    health.add_argument(
        "--warning", type=float, metavar="MIN", help="no success for MIN minutes (default: half)"
    )
    health.add_argument(
        "--critical",
        type=float,
        metavar="MIN",
        help="no success for MIN minutes (default: DICOM_SYNC_ALERT_NO_CHECK_MINUTES, 15)",
    )
    health.set_defaults(handler=cmd_health)

    ui = commands.add_parser(
        "ui", help="start `dagster dev` on 127.0.0.1 with this project's instance"
    )
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=cmd_ui)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser(argv).parse_args(argv)
    # Run history, logs and state files hold accession numbers and UIDs: ours alone (0600/0700).
    os.umask(os.umask(0o077) | 0o077)
    replaced = load_dotenv(Path.cwd())
    if replaced:  # the rule `dagster dev` applies too; names only, values may be secrets
        print(f"note: .env overrides the environment for {', '.join(replaced)}", file=sys.stderr)
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("Stopped.")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
