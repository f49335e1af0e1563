"""`dagster dev` for tests and benchmarks: on a free loopback port, in its own process group
and DAGSTER_HOME, waited for and driven over GraphQL, stopped as a whole (group SIGINT like
Ctrl+C, then SIGKILL)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

from dagster import DagsterInstance, DagsterRunStatus

from dicom_sync_dagster.process_group import start_group, stop_group
from dicom_sync_dagster.sandbox import LOOPBACK, free_port

REPO = Path(__file__).resolve().parents[2]
MODULE = "dicom_sync_dagster.definitions"
STARTUP_SECONDS = 120.0  # webserver up and code location loaded (~5 s on a quiet machine)
RUN_SECONDS = 120.0
STOP_SECONDS = 30.0
TERMINAL = frozenset(
    {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
)

WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              name
              schedules { name scheduleState { id status } }
              sensors { name sensorState { status } }
            }
          }
        }
      }
    }
  }
}
"""


class GraphQLError(RuntimeError):
    """The webserver answered with GraphQL errors."""


def graphql(port: int, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    """POST ``query`` to the webserver on ``port``; its ``data`` (GraphQLError on errors)."""
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.loads(response.read())
    if body.get("errors"):
        raise GraphQLError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def clean_env(*overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without DICOM_SYNC_* and DAGSTER_*, then ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DICOM_SYNC_", "DAGSTER_"))}
    for extra in overrides:
        env.update(extra)
    return env


def dagster_home(folder: Path, dagster_yaml: Path = REPO / "dagster.yaml") -> Path:
    """``folder``/dagster_home holding a copy of ``dagster_yaml``."""
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(dagster_yaml, home / "dagster.yaml")
    return home


def listening(port: int) -> bool:
    """Whether something accepts connections on the loopback ``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def wait_until_loaded(
    port: int, processes: Iterable[Popen], seconds: float = STARTUP_SECONDS, poll: float = 0.25
) -> dict:
    """Poll the webserver on ``port`` until its one code location is loaded; that location as
    ``{"name": ..., "repositories": [...]}``. Raises when one of ``processes`` exits, when the
    location failed to load (an unreachable code server is waited for), or after ``seconds``."""
    processes = list(processes)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        try:
            entries = graphql(port, WORKSPACE_QUERY, timeout=10)["workspaceOrError"]
            entries = entries["locationEntries"]
        except (OSError, urllib.error.URLError, ValueError):  # not up yet
            entries = []
        if entries and entries[0]["loadStatus"] == "LOADED":
            if len(entries) != 1:
                raise RuntimeError(f"more than one code location: {entries}")
            location = entries[0]["locationOrLoadError"]
            if location["__typename"] == "RepositoryLocation":
                return {"name": entries[0]["name"], **location}
            # A code server being restarted is unreachable for a while: wait for the webserver
            # to reconnect; any other error is the location's own.
            if "DagsterUserCodeUnreachableError" not in location.get("message", ""):
                raise RuntimeError(f"the code location did not load: {location}")
        time.sleep(poll)
    raise TimeoutError(f"the webserver on {port} did not load the code location in {seconds} s")


@dataclass
class DagsterDev:
    """A `dagster dev` we started (see ``start_dagster_dev``)."""

    process: Popen
    port: int
    home: Path  # its DAGSTER_HOME
    cwd: Path
    log: Path
    started_at: float  # time.monotonic() at start
    stopped: bool = field(default=False)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.port, query, variables)

    def wait_until_loaded(self, seconds: float = STARTUP_SECONDS) -> dict:
        return wait_until_loaded(self.port, [self.process], seconds)

    def client(self):  # -> DagsterGraphQLClient (dagster-graphql: a dev dependency)
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient(LOOPBACK, port_number=self.port)

    def wait_for_runs(
        self, run_ids: Iterable[str], seconds: float = RUN_SECONDS
    ) -> dict[str, DagsterRunStatus]:
        """Each run's status once all are finished, or as they are after ``seconds``."""
        client, run_ids = self.client(), list(run_ids)
        deadline = time.monotonic() + seconds
        while True:
            statuses = {run_id: client.get_run_status(run_id) for run_id in run_ids}
            if set(statuses.values()) <= TERMINAL or time.monotonic() > deadline:
                return statuses
            time.sleep(0.5)

    @contextlib.contextmanager
    def instance(self) -> Iterator[DagsterInstance]:
        """Its Dagster instance, read from this process."""
        with DagsterInstance.from_config(str(self.home)) as instance:
            yield instance

    def tail(self, lines: int = 80) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    @contextlib.contextmanager
    def log_on_failure(self) -> Iterator[None]:
        """Print the end of its log when the block raises."""
        try:
            yield
        except BaseException:
            print(f"---- last lines of {self.log} ----\n{self.tail()}")
            raise

    def stop(self, seconds: float = STOP_SECONDS) -> None:
        """SIGINT to its process group (webserver, daemon, code server, run workers), then
        SIGKILL whatever is left after ``seconds``."""
        if self.stopped:
            return
        self.stopped = True
        if not stop_group(self.process, seconds=seconds):
            print(f"dagster dev ignored SIGINT for {seconds} s; killed its group")


def start_dagster_dev(
    folder: Path,
    env: Mapping[str, str],
    *,
    dagster_yaml: Path = REPO / "dagster.yaml",
    routes: str = "",
    dotenv: str = "",
) -> DagsterDev:
    """`python -m dagster dev -m dicom_sync_dagster.definitions` on a free loopback port with
    ``env`` (plus DAGSTER_HOME = ``folder``/dagster_home holding ``dagster_yaml``), started in
    ``folder``/cwd (not the repository: `dagster dev` would read a .env there), which holds
    ``routes`` as dicom_sync.yaml and ``dotenv`` as .env when given. Does not wait."""
    folder.mkdir(parents=True, exist_ok=True)
    home = dagster_home(folder, dagster_yaml)
    cwd = folder / "cwd"
    cwd.mkdir(exist_ok=True)
    if routes:  # as a site keeps it: dicom_sync.yaml in the folder dagster dev starts in
        (cwd / "dicom_sync.yaml").write_text(routes)
    if dotenv:
        (cwd / ".env").write_text(dotenv)
    port = free_port()
    log = folder / "dagster_dev.log"
    command = [sys.executable, "-m", "dagster", "dev", "-h", LOOPBACK, "-p", str(port)]
    started_at = time.monotonic()
    process = start_group(
        [*command, "-m", MODULE], cwd=cwd, env={**env, "DAGSTER_HOME": str(home)}, log=log
    )
    return DagsterDev(process, port, home, cwd, log, started_at)


@contextlib.contextmanager
def running_dagster_dev(folder: Path, env: Mapping[str, str], **options) -> Iterator[DagsterDev]:
    """``start_dagster_dev`` for the ``with`` block, stopped at its end."""
    dev = start_dagster_dev(folder, env, **options)
    try:
        yield dev
    finally:
        dev.stop()
