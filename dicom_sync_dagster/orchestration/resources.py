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

from dagster import ConfigurableResource, EnvVar, Failure, InitResourceContext
from pydantic import Field

from ..core.selection import Selection
from ..core.text import printable
from ..dicom.node import DicomNode, Timeouts
from ..routes import DEFAULT_ROUTE, OPTION_DEFAULTS, Route, field_names, request_limits
from ..settings import (
    CALLING_AE,
    DEFAULT_CALLING_AE,
    IMAGE_LIMIT,
    MODE,
    MOVE_DESTINATION,
    NODE_VARIABLES,
    TIMEZONE,
    TLS_VARIABLES,
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


class DicomNodeResource(ConfigurableResource):
    """A DICOM Query/Retrieve SCP: the remote PACS (the source) or the local PACS."""

    role: str = Field(description="'remote' or 'local'; names the node in messages.")
    ae_title: str = Field(default="", description="Called AE title of the node.")
    host: str = Field(default="", description="Host name or IP address.")
    port: str = Field(default="", description="DICOM port, 1-65535.")
    tls_ca: str = Field(
        default="", description="PEM CA file that signed the node's certificate; set: DICOM TLS."
    )
    tls_cert: str = Field(default="", description="PEM client certificate (TLS, optional).")
    tls_key: str = Field(default="", description="PEM key of tls_cert, unencrypted.")
    source: str = Field(default="", description=SOURCE_DESCRIPTION)

    def node_values(self) -> tuple[str, ...]:
        """(AE title, host, port, TLS CA, cert, key) as given, for the settings checks."""
        return (self.ae_title, self.host, self.port, self.tls_ca, self.tls_cert, self.tls_key)

    def node(self) -> DicomNode:
        return node_from_values(self.role, *self.node_values(), names=_names(self.source))


class SyncOptionsResource(ConfigurableResource):
    """How this tool talks to both nodes, and what the route's runs do by default."""

    route: str = Field(default=DEFAULT_ROUTE, description="The route these runs belong to.")
    source: str = Field(default="", description=SOURCE_DESCRIPTION)
    mode: str = Field(
        default=OPTION_DEFAULTS["mode"],
        description="Default mode of runs (smallest, fewer_than, all); the run config may "
        "choose another.",
    )
    image_limit: str = Field(default="", description="Image limit of mode fewer_than.")
    window_hours: float = Field(
        default=OPTION_DEFAULTS["window_hours"], description="Default window of runs, in hours."
    )
    catch_up_max_hours: float = Field(
        default=OPTION_DEFAULTS["catch_up_max_hours"],
        description="After an outage, the window stretches back to the last run that examined "
        "the remote, but at most this many hours; 0: never.",
    )
    failing_runs_limit: int = Field(
        default=OPTION_DEFAULTS["failing_runs_limit"],
        description="The archive's asset check fails when a series has failed in more runs "
        "in a row than this.",
    )

    calling_ae: str = Field(
        default=DEFAULT_CALLING_AE, description="AE title this tool uses as SCU."
    )
    move_destination: str = Field(
        default="", description="AE title the remote sends C-MOVEs to; empty: the local AE title."
    )
    timezone: str = Field(
        default="", description="IANA zone of StudyDate/StudyTime; empty: this machine's zone."
    )
    connect_timeout: float = Field(default=5.0, description="Seconds to open a TCP connection.")
    acse_timeout: float = Field(default=15.0, description="Seconds for association set-up/release.")
    dimse_timeout: float = Field(default=120.0, description="Seconds to wait for one response.")
    network_timeout: float = Field(default=300.0, description="Seconds an association may idle.")
    max_parallel_moves: int = Field(
        default=OPTION_DEFAULTS["max_parallel_moves"],
        description="C-MOVEs at once, each on its own association (1-32).",
    )
    move_retries: int = Field(
        default=OPTION_DEFAULTS["move_retries"],
        description="Retries within a run of a move that failed for a transient reason "
        "(timeout, abort, out of resources, unreachable); 0-10.",
    )
    retry_backoff_seconds: float = Field(
        default=OPTION_DEFAULTS["retry_backoff_seconds"],
        description="Wait before the first retry; doubled for each further one.",
    )
    confirm_seconds: float = Field(
        default=OPTION_DEFAULTS["confirm_seconds"],
        description="After a successful C-MOVE, wait up to this long for the local PACS to list "
        "every image (PACS that file received images in the background).",
    )

    find_deadline: float = Field(
        default=OPTION_DEFAULTS["find_deadline"],
        description="Seconds one C-FIND may take from request to its last answer.",
    )
    move_no_progress_timeout: float = Field(
        default=OPTION_DEFAULTS["move_no_progress_timeout"],
        description="A C-MOVE whose sub-operation counts do not change for this many seconds "
        "is cancelled (a remote that sends 'pending' and does nothing).",
    )
    move_deadline: float = Field(
        default=OPTION_DEFAULTS["move_deadline"],
        description="Seconds one C-MOVE (one series) may take in all.",
    )
    max_find_answers: int = Field(
        default=OPTION_DEFAULTS["max_find_answers"],
        description="Answers taken per C-FIND; then it is cancelled (a study query is then "
        "asked again in smaller date/time slices, any other fails naming the node).",
    )

    def settings(self, remote: DicomNodeResource, local: DicomNodeResource) -> SyncSettings:
        timeouts = Timeouts(
            self.connect_timeout, self.acse_timeout, self.dimse_timeout, self.network_timeout
        )
        return settings_from_values(
            remote=remote.node_values(),
            local=local.node_values(),
            calling_ae=self.calling_ae,
            move_destination=self.move_destination,
            timezone=self.timezone,
            timeouts=request_limits(self.model_dump(), timeouts),
            max_parallel_moves=self.max_parallel_moves,
            move_retries=self.move_retries,
            retry_backoff_seconds=self.retry_backoff_seconds,
            confirm_seconds=self.confirm_seconds,
            names=_names(self.source),
        )

    def selection(self) -> Selection:
        """The route's default selection (mode and image limit), validated."""
        return check_selection(self.mode, self.image_limit, _names(self.source))


def _env_or(name: str, default: str = "") -> str | EnvVar:
    """``EnvVar(name)`` when it is set (so the UI shows where the value comes from)."""
    return EnvVar(name) if os.environ.get(name) else default


def node_resource_from_env(role: str) -> DicomNodeResource:
    ae_var, host_var, port_var = NODE_VARIABLES[role]
    ca_var, cert_var, key_var = TLS_VARIABLES[role]
    return DicomNodeResource(
        role=role,
        ae_title=_env_or(ae_var),
        host=_env_or(host_var),
        port=_env_or(port_var),
        tls_ca=_env_or(ca_var),
        tls_cert=_env_or(cert_var),
        tls_key=_env_or(key_var),
    )


def options_resource_from_env() -> SyncOptionsResource:
    return SyncOptionsResource(
        calling_ae=_env_or(CALLING_AE, DEFAULT_CALLING_AE),
        move_destination=_env_or(MOVE_DESTINATION),
        timezone=_env_or(TIMEZONE),
        mode=_env_or(MODE, "smallest"),
        image_limit=_env_or(IMAGE_LIMIT),
    )


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
    options = {key: route.options.get(key, default) for key, default in OPTION_DEFAULTS.items()}
    options["image_limit"] = str(options["image_limit"])
    options["calling_ae"] = options["calling_ae"] or DEFAULT_CALLING_AE
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
