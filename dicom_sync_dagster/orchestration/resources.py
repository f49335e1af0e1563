"""The two PACS nodes and the tool's own options as Dagster resources.

Values are kept as text and validated by :mod:`dicom_sync_dagster.settings`, so a bad value
stops the run with an error naming the environment variable and the value.
"""

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, EnvVar, Failure, InitResourceContext
from pydantic import Field

from .. import options as o
from ..core.selection import Selection
from ..core.text import printable
from ..dicom.node import DicomNode
from ..routes import DEFAULT_ROUTE, Route, field_names
from ..settings import (
    SETTINGS_OPTIONS,
    SyncSettings,
    check_selection,
    node_from_values,
    settings_from_values,
)
from .private_files import open_private
from .stale_runs import lock_text

LOCK_FILE = "dicom-sync{suffix}.lock"  # suffix: Route.state_suffix

SOURCE_DESCRIPTION = (
    "Where the values come from, to name them in errors: empty for the DICOM_SYNC_* "
    "environment variables, else the route in dicom_sync.yaml."
)


def _names(source: str) -> dict[str, str] | None:
    return field_names(source) if source else None


def _field(declared: o.Option | o.NodeField) -> Any:
    """The resource field of an option or node value: its default and description."""
    default = declared.default if isinstance(declared, o.Option) else ""
    return Field(default=default, description=declared.description)


_NODE = {field.name: field for field in o.NODE}


class DicomNodeResource(ConfigurableResource):
    """A DICOM Query/Retrieve SCP: the remote PACS (the source) or the local PACS."""

    role: str = Field(description="'remote' or 'local'; names the node in messages.")
    ae_title: str = _field(_NODE["ae_title"])
    host: str = _field(_NODE["host"])
    port: str = _field(_NODE["port"])
    tls_ca: str = _field(_NODE["tls_ca"])
    tls_cert: str = _field(_NODE["tls_cert"])
    tls_key: str = _field(_NODE["tls_key"])
    source: str = Field(default="", description=SOURCE_DESCRIPTION)

    def node_values(self) -> dict[str, str]:
        """The node's fields as given, for the settings checks."""
        return {name: getattr(self, name) for name in o.NODE_FIELDS}

    def node(self) -> DicomNode:
        return node_from_values(self.role, self.node_values(), _names(self.source))


class SyncOptionsResource(ConfigurableResource):
    """How this tool talks to both nodes, and what the route's runs do by default. One field
    per option of :mod:`dicom_sync_dagster.options`, which gives its default and description."""

    route: str = Field(default=DEFAULT_ROUTE, description="The route these runs belong to.")
    source: str = Field(default="", description=SOURCE_DESCRIPTION)
    mode: str = _field(o.MODE)
    image_limit: str = _field(o.IMAGE_LIMIT)
    window_hours: float = _field(o.WINDOW_HOURS)
    catch_up_max_hours: float = _field(o.CATCH_UP_MAX_HOURS)
    failing_runs_limit: int = _field(o.FAILING_RUNS_LIMIT)

    calling_ae: str = _field(o.CALLING_AE)
    move_destination: str = _field(o.MOVE_DESTINATION)
    timezone: str = _field(o.TIMEZONE)
    connect_timeout: float = _field(o.CONNECT_TIMEOUT)
    acse_timeout: float = _field(o.ACSE_TIMEOUT)
    dimse_timeout: float = _field(o.DIMSE_TIMEOUT)
    network_timeout: float = _field(o.NETWORK_TIMEOUT)
    max_parallel_moves: int = _field(o.MAX_PARALLEL_MOVES)
    move_retries: int = _field(o.MOVE_RETRIES)
    retry_backoff_seconds: float = _field(o.RETRY_BACKOFF_SECONDS)
    confirm_seconds: float = _field(o.CONFIRM_SECONDS)
    find_deadline: float = _field(o.FIND_DEADLINE)
    move_no_progress_timeout: float = _field(o.MOVE_NO_PROGRESS_TIMEOUT)
    move_deadline: float = _field(o.MOVE_DEADLINE)
    max_find_answers: int = _field(o.MAX_FIND_ANSWERS)

    def settings(self, remote: DicomNodeResource, local: DicomNodeResource) -> SyncSettings:
        return settings_from_values(
            remote=remote.node_values(),
            local=local.node_values(),
            names=_names(self.source),
            **{option.name: getattr(self, option.name) for option in SETTINGS_OPTIONS},
        )

    def selection(self) -> Selection:
        """The route's default selection (mode and image limit), validated."""
        return check_selection(self.mode, self.image_limit, _names(self.source))


_MISSING = sorted({x.name for x in o.OPTIONS} - set(SyncOptionsResource.model_fields))
if _MISSING:  # an option added to the model but not here: the Launchpad would not show it
    raise TypeError(f"SyncOptionsResource lacks the options {', '.join(_MISSING)}")


def _env_or(name: str, default: str = "") -> str | EnvVar:
    """``EnvVar(name)`` when it is set (so the UI shows where the value comes from)."""
    return EnvVar(name) if os.environ.get(name) else default


def node_resource_from_env(role: str) -> DicomNodeResource:
    values = {field.name: _env_or(field.variable(role)) for field in o.NODE}
    return DicomNodeResource(role=role, **values)


def options_resource_from_env() -> SyncOptionsResource:
    """The options whose ``DICOM_SYNC_*`` variable is set take it (the others: defaults)."""
    values: dict[str, Any] = {
        x.name: _env_or(x.variable, x.default) for x in o.OPTIONS if x.variable
    }
    return SyncOptionsResource(**values)


def route_resources(route: Route) -> dict[str, ConfigurableResource]:
    """The resources of one route's jobs: its two nodes, its options, its own lock."""
    lock = SyncLockResource(file_name=LOCK_FILE.format(suffix=route.state_suffix))
    if route.from_env:
        return {
            "remote_pacs": node_resource_from_env("remote"),
            "local_pacs": node_resource_from_env("local"),
            "sync_options": options_resource_from_env(),
            "sync_lock": lock,
        }
    nodes = {
        f"{role}_pacs": DicomNodeResource(role=role, source=route.source, **values)
        for role, values in (("remote", route.remote), ("local", route.local))
    }
    options: dict[str, Any] = {x.name: route.options.get(x.name, x.default) for x in o.OPTIONS}
    return {
        **nodes,
        "sync_options": SyncOptionsResource(route=route.name, source=route.source, **options),
        "sync_lock": lock,
    }


class SyncLockResource(ConfigurableResource):
    """An exclusive lock file in the instance folder, held for the whole sync run.

    The run queue keeps runs launched through Dagster one at a time, and the schedule skips
    while one is going; `dicom-sync run` executes in-process and bypasses the queue, so this
    lock is what keeps it from moving the same series as a scheduled run at the same moment.
    (One host: a file lock does not span machines.)
    """

    wait_seconds: float = Field(default=10.0, description="How long to wait for the lock.")
    file_name: str = Field(
        default=LOCK_FILE.format(suffix=""), description="In the instance folder; one per route."
    )

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator["SyncLockResource"]:
        if context.instance is None or context.run is None:  # Dagster gives both to a run
            raise Failure("the sync lock is taken only within a run of a Dagster instance")
        path = Path(context.instance.root_directory) / self.file_name
        try:  # never through a link planted at the lock's name; 0600
            fd = open_private(path)
        except OSError as exc:
            raise Failure(f"cannot open the lock file {path}: {exc.strerror or exc}") from None
        with open(fd, "r+", encoding="utf-8") as handle:
            deadline = time.monotonic() + self.wait_seconds
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        handle.seek(0)
                        holder = printable(handle.read(200).strip(), 100) or "another process"
                        raise Failure(
                            f"another sync run is in progress ({holder} holds {path}); "
                            "this run did nothing"
                        ) from None
                    time.sleep(0.2)
            handle.seek(0)
            handle.truncate()
            handle.write(lock_text(context.run.run_id, os.getpid()))
            handle.flush()
            try:
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
