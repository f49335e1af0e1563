"""deploy/ for real: deploy/dagster.yaml's Dagster instance on a PostgreSQL server of its own.

The `postgres` fixture runs initdb into a fresh folder and starts PostgreSQL (Debian package
`postgresql`) on a free 127.0.0.1 port, as the `postgres` system user when the tests run as root
(PostgreSQL refuses to run as root); it creates the role and database the way deploy/README.md
says, and stops the server by PID at the end. Without the server binaries the tests skip; with
DICOM_SYNC_REQUIRE_SERVERS=1 (as .ci/run sets) they fail.

- `dicom-sync run --once` against that instance: the run, its status and its tags end up in
  PostgreSQL (read with psql), nothing in SQLite.
- the three services of deploy/systemd/, started with their units' own command lines (paths and
  ports swapped for the test's): a code server, the daemon and the webserver on
  deploy/workspace.yaml; two runs launched over GraphQL go through the queue one after the other,
  and a third runs after the code server restarted.
- deploy/dagster.yaml's run queue limit, as Dagster reads it: one run per route, routes side by
  side.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.instance.config import dagster_instance_config
from dagster._core.storage.dagster_run import DagsterRun
from dagster._utils.tags import TagConcurrencyLimitsCounter
from dagster_graphql import DagsterGraphQLClient

from dicom_sync_dagster.orchestration.jobs import CONCURRENCY_TAG
from dicom_sync_dagster.orchestration.resources import LOCK_FILE
from dicom_sync_dagster.orchestration.settled_state import STATE_FILE
from dicom_sync_dagster.orchestration.tags import OUTCOME_TAG
from dicom_sync_dagster.process_group import start_group, stop_group
from dicom_sync_dagster.sandbox import LOOPBACK, free_port, wait_for_port
from dicom_sync_dagster.synthetic import SyntheticStudy

from .support.dagster_dev import clean_env, wait_until_loaded

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PG_ROOT = Path("/usr/lib/postgresql")
PG_SYSTEM_USER = "postgres"
PG_ENV = (
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)
STARTUP_SECONDS = 90
RUN_SECONDS = 90
TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
# What the units use on a real host; the test swaps in its own folder, ports and venv.
HOST_HOME = "/var/lib/dicom-sync"
HOST_VENV_BIN = "/opt/dicom-sync/venv/bin/"
HOST_CODE_PORT = 4266
HOST_WEB_PORT = 3000
SYNC_JOB = "dicom_sync"  # the sync job of the route from the DICOM_SYNC_* variables
# The default route's files in DAGSTER_HOME (other routes add "-<route>" to the names).
LOCK_NAME = LOCK_FILE.format(suffix="")
STATE_NAME = STATE_FILE.format(suffix="")


def _server_bin() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin that holds the server; skip or fail if none."""
    found = sorted(
        (path.parent for path in PG_ROOT.glob("*/bin/postgres")),
        key=lambda folder: int(folder.parent.name) if folder.parent.name.isdigit() else 0,
    )
    if found and (found[-1] / "initdb").exists() and (found[-1] / "psql").exists():
        return found[-1]
    message = (
        f"no PostgreSQL server in {PG_ROOT}/<version>/bin (Debian package postgresql); "
        "the deploy/ tests need one"
    )
    if os.environ.get("DICOM_SYNC_REQUIRE_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Postgres:
    """A throw-away PostgreSQL server and the role/database the Dagster instance uses."""

    bin: Path
    folder: Path  # data directory, unix socket and log
    port: int
    process: subprocess.Popen
    user: str = "dagster"
    password: str = ""
    db: str = "dagster"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def env(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": LOOPBACK,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db,
        }

    def psql(self, sql: str, *, superuser: bool = False) -> list[list[str]]:
        """Rows of ``sql``: as the superuser over the unix socket, else as the Dagster role over
        TCP with its password (as Dagster connects)."""
        if superuser:
            where = ["-h", str(self.folder), "-U", PG_SYSTEM_USER, "-d", "postgres"]
        else:
            where = ["-h", LOOPBACK, "-U", self.user, "-d", self.db]
        done = subprocess.run(
            [
                str(self.bin / "psql"),
                *where,
                *("-p", str(self.port), "-X", "-q", "-A", "-t", "-F", "\t"),
                *("-v", "ON_ERROR_STOP=1", "-c", sql),
            ],
            env={**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, f"psql {sql!r}: {done.stderr}"
        return [line.split("\t") for line in done.stdout.splitlines() if line]

    def log(self) -> str:
        path = self.folder / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of the postmaster by its PID, SIGKILL if it lingers."""
        pid = self.process.pid
        with contextlib.suppress(OSError, ValueError, IndexError):
            # Under runuser, the Popen is runuser; postmaster.pid names the server itself.
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                for victim in {pid, self.process.pid}:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(victim, signal.SIGKILL)
                self.process.wait(5)


def _as_postgres(folder: Path) -> list[str]:
    """The command prefix that runs the server's programs as a non-root user."""
    if os.geteuid() != 0:
        return []
    try:
        account = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        pytest.fail(f"running as root and there is no {PG_SYSTEM_USER!r} user to run PostgreSQL")
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid)
    return ["runuser", "-u", PG_SYSTEM_USER, "--"]


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """PostgreSQL on a free loopback port with a `dagster` role (password) owning `dagster`."""
    server_bin = _server_bin()
    # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, closed to the postgres user.
    folder = Path(tempfile.mkdtemp(prefix="dicom-sync-pg-"))
    server = None
    try:
        prefix = _as_postgres(folder)
        initdb = subprocess.run(
            [
                *prefix,
                *(str(server_bin / "initdb"), "-D", str(folder / "data"), "-U", PG_SYSTEM_USER),
                *("--auth-local=trust", "--auth-host=scram-sha-256"),
                *("-E", "UTF8", "--no-locale", "--no-sync"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert initdb.returncode == 0, f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}"
        port = free_port()
        with open(folder / "postgres.log", "wb") as log:
            process = subprocess.Popen(
                [
                    *prefix,
                    *(str(server_bin / "postgres"), "-D", str(folder / "data")),
                    *("-h", LOOPBACK, "-p", str(port), "-k", str(folder)),
                    # A test database: durability not needed, speed is.
                    *("-c", "fsync=off", "-c", "synchronous_commit=off"),
                    *("-c", "full_page_writes=off"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Postgres(server_bin, folder, port, process, password=secrets.token_hex(12))
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"postgres exited:\n{server.log()}"
            try:
                server.psql("SELECT 1", superuser=True)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"postgres not ready in 30 s:\n{server.log()}") from None
                time.sleep(0.2)
        # deploy/README.md's role and database.
        server.psql(f"CREATE ROLE dagster LOGIN PASSWORD '{server.password}'", superuser=True)
        server.psql("CREATE DATABASE dagster OWNER dagster", superuser=True)
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _dagster_home(folder: Path) -> Path:
    """A DAGSTER_HOME holding a copy of deploy/dagster.yaml, as deploy/README.md sets one up."""
    folder.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", folder / "dagster.yaml")
    return folder


@contextlib.contextmanager
def _instance(home: Path, postgres: Postgres) -> Iterator[DagsterInstance]:
    """The instance of ``home``, loaded like the services load it (env: values resolved)."""
    saved = {key: os.environ.get(key) for key in [*postgres.env(), "DAGSTER_HOME"]}
    os.environ.update({**postgres.env(), "DAGSTER_HOME": str(home)})
    try:
        with DagsterInstance.get() as instance:
            yield instance
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_deploy_docs_name_the_files_and_tag_the_code_uses():
    readme = (DEPLOY / "README.md").read_text()
    for name in (LOCK_NAME, STATE_NAME, CONCURRENCY_TAG, "dagster instance migrate"):
        assert name in readme, name
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert config["concurrency"]["runs"]["tag_concurrency_limits"] == [
        {"key": CONCURRENCY_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]


def test_the_run_queue_keeps_each_route_to_one_run_and_lets_routes_overlap(tmp_path, monkeypatch):
    home = _dagster_home(tmp_path / "home")
    for key in PG_ENV:
        monkeypatch.setenv(key, "5432" if key.endswith("PORT") else "x")
    # Dagster's own schema check of the file (a wrong key or shape fails here), env: resolved.
    config = dagster_instance_config(str(home))[0]
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"

    def run(job: str, route: str | None) -> DagsterRun:
        tags = {CONCURRENCY_TAG: route} if route else {}
        return DagsterRun(job_name=job, tags=tags)

    counter = TagConcurrencyLimitsCounter(limits, [run(SYNC_JOB, SYNC_JOB)])
    assert counter.is_blocked(run(SYNC_JOB, SYNC_JOB))  # same route: waits in the queue
    assert not counter.is_blocked(run("sync_north", "sync_north"))  # another route
    assert not counter.is_blocked(run("check_connections", None))  # untagged jobs: no limit


@pytest.mark.servers
def test_run_once_records_its_run_in_postgres(site, postgres, tmp_path):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 3], accession="PG-1"))
    site.add_local(study, series=[0])  # the second series is missing on the local PACS
    home = _dagster_home(tmp_path / "dagster_home")
    cwd = tmp_path / "cwd"  # no .env
    cwd.mkdir()

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "dicom_sync_dagster.cli", "run", "--once", "--all-series"],
        env=clean_env(site.env(), postgres.env(), {"DAGSTER_HOME": str(home)}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )
    seconds = time.monotonic() - started

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Successfully transferred: 1/1 series (3 images)" in done.stdout
    assert site.local.series_instances(study.series_uids[1]) == 3

    # In the database itself, read by psql as the Dagster role.
    rows = postgres.psql(
        "SELECT r.run_id, r.pipeline_name, r.status, t.value FROM runs r "
        f"JOIN run_tags t ON t.run_id = r.run_id AND t.key = '{OUTCOME_TAG}'"
    )
    assert [row[1:] for row in rows] == [[SYNC_JOB, "SUCCESS", "moved"]], rows
    run_id = rows[0][0]
    [[events]] = postgres.psql(f"SELECT count(*) FROM event_logs WHERE run_id = '{run_id}'")
    assert int(events) > 10
    assert list(home.rglob("*.db")) == []  # no SQLite storage anywhere in DAGSTER_HOME
    assert (home / LOCK_NAME).is_file()  # the run's lock file is in DAGSTER_HOME

    # And through Dagster, loaded from that DAGSTER_HOME as the services load it.
    with _instance(home, postgres) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        run = instance.get_run_by_id(run_id)
        assert run is not None
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.tags[OUTCOME_TAG] == "moved"
        assert run.tags[CONCURRENCY_TAG] == SYNC_JOB
    print(f"dicom-sync run --once against PostgreSQL: {seconds:.1f} s")


# ---- the three services of deploy/systemd/ -------------------------------------------------


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"---- {self.name} ----\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to its process group (it and the processes it started; what systemd sends),
        then SIGKILL."""
        stop_group(self.process, signal.SIGTERM, seconds=20)


def _unit(name: str) -> dict[str, list[str]]:
    """The [Service] settings of deploy/systemd/<name> (every value of each key)."""
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def _start_unit(name: str, home: Path, ports: dict[int, int], env: dict[str, str]) -> Service:
    """Start the unit's ExecStart like systemd would, with the test's folder, ports and venv."""
    unit = _unit(name)
    assert unit["User"] == ["dicom-sync"], unit
    assert unit["Restart"] == ["on-failure"], unit
    assert unit["EnvironmentFile"] == ["/etc/dicom-sync/dicom-sync.env"], unit
    assert unit["Environment"] == [f"DAGSTER_HOME={HOST_HOME}"], unit
    assert unit["WorkingDirectory"] == [HOST_HOME], unit

    def swap(arg: str) -> str:
        if arg.isdigit() and int(arg) in ports:
            return str(ports[int(arg)])
        return arg.replace(HOST_HOME, str(home))

    [command] = unit["ExecStart"]
    args = [swap(arg) for arg in shlex.split(command)]
    assert args[0].startswith(HOST_VENV_BIN), args
    program = Path(sys.executable).parent / args[0].removeprefix(HOST_VENV_BIN)
    assert program.exists(), f"{program} (from {name}) is not installed"
    log = home.parent / f"{name}.log"
    process = start_group(
        [str(program), *args[1:]],
        cwd=home,
        env=clean_env(env, {"DAGSTER_HOME": str(home)}),
        log=log,
    )
    return Service(name, process, log)


def _wait_for_runs(client: DagsterGraphQLClient, run_ids: list[str]) -> None:
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        if all(client.get_run_status(run_id) in TERMINAL for run_id in run_ids):
            return
        time.sleep(0.5)


@pytest.mark.servers
@pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning")  # in gql
def test_the_systemd_services_run_queued_sync_runs_one_at_a_time(site, postgres, tmp_path):
    study = site.add_remote(SyntheticStudy(site.ago(hours=2), [4, 2], accession="PG-2"))
    home = _dagster_home(tmp_path / "dagster_home")
    code_port, web_port = free_port(), free_port()
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    assert entry["grpc_server"]["host"] == LOOPBACK
    assert entry["grpc_server"]["port"] == HOST_CODE_PORT
    entry["grpc_server"]["port"] = code_port
    (home / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    # What /etc/dicom-sync/dicom-sync.env holds on a host; the schedule stays off, so only the
    # runs launched here run.
    env = {**site.env(), **postgres.env(), "DICOM_SYNC_SCHEDULE": "off"}
    ports = {HOST_CODE_PORT: code_port, HOST_WEB_PORT: web_port}

    started = time.monotonic()
    services: list[Service] = []
    try:
        code = _start_unit("dicom-sync-code.service", home, ports, env)
        services.append(code)
        wait_for_port(code_port, code.process, STARTUP_SECONDS)
        for name in ("dicom-sync-daemon.service", "dicom-sync-webserver.service"):
            services.append(_start_unit(name, home, ports, env))
        location = wait_until_loaded(web_port, [s.process for s in services], STARTUP_SECONDS)
        assert location["name"] == "dicom_sync_dagster"
        up = time.monotonic() - started

        # Two runs of the one route at once: the queue must start the second after the first.
        client = DagsterGraphQLClient(LOOPBACK, port_number=web_port)
        config = {"ops": {"start_cycle": {"config": {"mode": {"all": {}}}}}}
        run_ids = [client.submit_job_execution(SYNC_JOB, run_config=config) for _ in range(2)]
        _wait_for_runs(client, run_ids)
        ran = time.monotonic() - started - up

        # A restarted code server (new settings, a new release): the webserver and the daemon
        # carry on with it, no restart of their own.
        code.stop()
        services.remove(code)
        code = _start_unit("dicom-sync-code.service", home, ports, env)
        services.append(code)
        wait_for_port(code_port, code.process, STARTUP_SECONDS)
        wait_until_loaded(web_port, [s.process for s in services], STARTUP_SECONDS)
        after_restart = client.submit_job_execution(SYNC_JOB, run_config=config)
        _wait_for_runs(client, [after_restart])

        with _instance(home, postgres) as instance:
            records = [instance.get_run_record_by_id(run_id) for run_id in run_ids]
            failures = {
                run_id: [r.message for r in instance.all_logs(run_id) if r.level >= 40]
                for run_id in run_ids
            }
            # When the daemon took each run off the queue and had it launched.
            launched = {
                run_id: [
                    record.timestamp
                    for record in instance.all_logs(run_id, of_type=DagsterEventType.RUN_STARTING)
                ]
                for run_id in run_ids
            }
        statuses = [record.dagster_run.status for record in records]
        assert statuses == [DagsterRunStatus.SUCCESS] * 2, (statuses, failures)
        assert all(len(times) == 1 for times in launched.values()), launched
        first, second = sorted(records, key=lambda record: launched[record.dagster_run.run_id])
        # The queue held the second run until the first had finished (not merely started).
        assert launched[second.dagster_run.run_id][0] >= first.end_time, (
            "the daemon launched the second run of the route while the first was going"
        )
        assert [first.dagster_run.tags[OUTCOME_TAG], second.dagster_run.tags[OUTCOME_TAG]] == [
            "moved",
            "idle",
        ]
        for uid, size in zip(study.series_uids, study.series_sizes, strict=True):
            assert site.local.series_instances(uid) == size
        with _instance(home, postgres) as instance:
            last = instance.get_run_by_id(after_restart)
        assert last is not None
        assert last.status == DagsterRunStatus.SUCCESS, last.status
        rows = postgres.psql("SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
        assert rows == [["3"]]
        print(f"services up in {up:.1f} s; two queued runs done in {ran:.1f} s")
    except BaseException:
        for service in services:
            print(service.tail())
        raise
    finally:
        for service in reversed(services):
            service.stop()  # before `site` and `postgres` stop
