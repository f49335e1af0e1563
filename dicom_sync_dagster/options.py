"""The settings model: every option declared once, and everything else derived from it.

An :class:`Option` says its name (the routes-file field, the Dagster resource field and the
Python attribute), its type (that of its default), its default, its range, its description
(shown in the Launchpad and by ``--help``), whether a ``DICOM_SYNC_*`` variable sets it for the
environment route, and whether ``dicom-sync configure`` asks for it. A :class:`NodeField` does
the same for the six values of a node (remote or local). Readers of the environment and of the
routes file, the resources, ``SyncSettings``, ``Timeouts`` and the CLI flags all take their
names, defaults and checks from here; every range check has one wording, :meth:`Option.problem`.

No imports from the rest of the package but :mod:`.core`: the DICOM layer takes its timeout
defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from .core.text import shorten

PREFIX = "DICOM_SYNC_"
ROLES = ("remote", "local")
DEFAULT_CALLING_AE = "DICOMSYNC"

T = TypeVar("T", str, int, float)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Option(Generic[T]):
    """One option. ``low``/``high``: the inclusive range of a number (``above``: ``low`` itself
    is out); ``env``: the variable ``DICOM_SYNC_<NAME>`` sets it for the environment route;
    ``file_default``: that variable also stands in for a routes file's top-level field;
    ``in_file``: a routes file may set it; ``timeout``: the :class:`Timeouts` field it sets;
    ``check``: the text check of :mod:`.settings` (ae_title, timezone); ``prompt``: asked by
    ``dicom-sync configure`` (which gives it a flag ``--<name>``)."""

    name: str
    default: T
    description: str
    low: float | None = None
    high: float | None = None
    above: bool = False
    env: bool = False
    file_default: bool = False
    in_file: bool = True
    timeout: str = ""
    check: str = ""
    prompt: str = ""

    @property
    def kind(self) -> type:
        return type(self.default)

    @property
    def variable(self) -> str:
        """Its environment variable, or ``""`` when it has none."""
        return PREFIX + self.name.upper() if self.env else ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def bounds(self) -> str:
        if self.low is None or self.high is None:
            return ""
        low, high = _number(self.low), _number(self.high)
        return f"> {low} and <= {high}" if self.above else f"{low}-{high}"

    def problem(self, name: str, value: float) -> str | None:
        """The range check, one wording for every source: ``None`` when ``value`` is in it."""
        if self.low is None or self.high is None:
            return None
        inside = self.low < value if self.above else self.low <= value
        if inside and value <= self.high:
            return None
        return f"{name}={shorten(value)} must be {self.bounds}"


@dataclass(frozen=True)
class NodeField:
    """One value of a node: ``suffix`` names its variable ``DICOM_SYNC_<ROLE>_<SUFFIX>``;
    ``prompt``: asked by ``dicom-sync configure`` (flag ``--<role>-<flag>``)."""

    name: str
    suffix: str
    description: str
    check: str
    prompt: str = ""
    flag: str = ""

    def variable(self, role: str) -> str:
        return f"{PREFIX}{role.upper()}_{self.suffix}"


NODE = (
    NodeField("ae_title", "AE", "Called AE title of the node.", "ae_title", "AE title", "ae"),
    NodeField("host", "HOST", "Host name or IP address.", "host", "Host (IP address)", "host"),
    NodeField("port", "PORT", "DICOM port, 1-65535.", "port", "Port", "port"),
    NodeField(
        "tls_ca", "TLS_CA", "PEM CA file that signed the node's certificate; set: DICOM TLS.", "tls"
    ),
    NodeField("tls_cert", "TLS_CERT", "PEM client certificate (TLS, optional).", "tls"),
    NodeField("tls_key", "TLS_KEY", "PEM key of tls_cert, unencrypted.", "tls"),
)
NODE_FIELDS = tuple(field.name for field in NODE)

DAY = 24 * 3600
MAX_WINDOW_HOURS = 24 * 14
CALLING_AE = Option(
    "calling_ae",
    DEFAULT_CALLING_AE,
    "AE title this tool uses as SCU.",
    env=True,
    file_default=True,
    check="ae_title",
    prompt="Calling AE title of this tool (both PACS must know it)",
)
MOVE_DESTINATION = Option(
    "move_destination",
    "",
    "AE title the remote sends C-MOVEs to; empty: the local AE title.",
    env=True,
    check="ae_title",
    prompt="Move destination (AE title the remote sends the images to)",
)
TIMEZONE = Option(
    "timezone",
    "",
    "IANA zone in which the PACS write StudyDate/StudyTime; empty: this machine's zone.",
    env=True,
    file_default=True,
    check="timezone",
    prompt="Time zone of the PACS' StudyDate/StudyTime (IANA name)",
)
MODE = Option(
    "mode",
    "smallest",
    "Default mode of runs (smallest, fewer_than, all); the run config may choose another.",
    env=True,
)
IMAGE_LIMIT = Option("image_limit", "", "Image limit of mode fewer_than.", env=True)
WINDOW_HOURS = Option(
    "window_hours", 12.0, "Default window of runs, in hours.", 0, MAX_WINDOW_HOURS, above=True
)
CATCH_UP_MAX_HOURS = Option(
    "catch_up_max_hours",
    72.0,
    "After an outage, the window stretches back to the last run that examined the remote, "
    "but at most this many hours; 0: never.",
    0,
    24 * 31,
)
FAILING_RUNS_LIMIT = Option(
    "failing_runs_limit",
    3,
    "The archive's asset check fails when a series has failed in more runs in a row than this.",
    1,
    1000,
)
CONNECT_TIMEOUT = Option(
    "connect_timeout", 5.0, "Seconds to open a TCP connection.", in_file=False, timeout="connect"
)
ACSE_TIMEOUT = Option(
    "acse_timeout", 15.0, "Seconds for association set-up/release.", in_file=False, timeout="acse"
)
DIMSE_TIMEOUT = Option(
    "dimse_timeout", 120.0, "Seconds to wait for one response.", in_file=False, timeout="dimse"
)
NETWORK_TIMEOUT = Option(
    "network_timeout", 300.0, "Seconds an association may idle.", in_file=False, timeout="network"
)
MAX_PARALLEL_MOVES = Option(
    "max_parallel_moves", 4, "C-MOVEs at once, each on its own association (1-32).", 1, 32
)
MOVE_RETRIES = Option(
    "move_retries",
    2,
    "Retries within a run of a move that failed for a transient reason (timeout, abort, out "
    "of resources, unreachable); 0-10.",
    0,
    10,
)
RETRY_BACKOFF_SECONDS = Option(
    "retry_backoff_seconds",
    2.0,
    "Wait before the first retry; doubled for each further one.",
    0,
    300,
)
CONFIRM_SECONDS = Option(
    "confirm_seconds",
    10.0,
    "After a successful C-MOVE, wait up to this long for the local PACS to list every image "
    "(PACS that file received images in the background).",
    0,
    600,
)
# Every request has an end: a C-FIND by its deadline, a C-MOVE when its counts stop changing
# and by its deadline; a C-FIND takes this many answers.
FIND_DEADLINE = Option(
    "find_deadline",
    600.0,
    "Seconds one C-FIND may take from request to its last answer.",
    1,
    DAY,
    timeout="find_deadline",
)
MOVE_NO_PROGRESS_TIMEOUT = Option(
    "move_no_progress_timeout",
    300.0,
    "A C-MOVE whose sub-operation counts do not change for this many seconds is cancelled "
    "(a remote that sends 'pending' and does nothing).",
    1,
    DAY,
    timeout="move_no_progress",
)
MOVE_DEADLINE = Option(
    "move_deadline",
    1800.0,
    "Seconds one C-MOVE (one series) may take in all.",
    1,
    DAY,
    timeout="move_deadline",
)
MAX_FIND_ANSWERS = Option(
    "max_find_answers",
    100_000,
    "Answers taken per C-FIND; then it is cancelled (a study query is then asked again in "
    "smaller date/time slices, any other fails naming the node).",
    1,
    10_000_000,
    timeout="find_answers",
)

OPTIONS: tuple[Option, ...] = (
    CALLING_AE,
    MOVE_DESTINATION,
    TIMEZONE,
    MODE,
    IMAGE_LIMIT,
    WINDOW_HOURS,
    CATCH_UP_MAX_HOURS,
    FAILING_RUNS_LIMIT,
    CONNECT_TIMEOUT,
    ACSE_TIMEOUT,
    DIMSE_TIMEOUT,
    NETWORK_TIMEOUT,
    MAX_PARALLEL_MOVES,
    MOVE_RETRIES,
    RETRY_BACKOFF_SECONDS,
    CONFIRM_SECONDS,
    FIND_DEADLINE,
    MOVE_NO_PROGRESS_TIMEOUT,
    MOVE_DEADLINE,
    MAX_FIND_ANSWERS,
)
BY_NAME = {option.name: option for option in OPTIONS}
FILE_OPTIONS = tuple(option for option in OPTIONS if option.in_file)
TIMEOUT_OPTIONS = tuple(option for option in OPTIONS if option.timeout)
# Options of one run of a route, not of a connection (SyncSettings has the others).
RUN_OPTIONS = (MODE, IMAGE_LIMIT, WINDOW_HOURS, CATCH_UP_MAX_HOURS, FAILING_RUNS_LIMIT)


def node_variables(role: str) -> tuple[str, ...]:
    """The six ``DICOM_SYNC_<ROLE>_*`` variables of a node, in :data:`NODE` order."""
    return tuple(field.variable(role) for field in NODE)


def field_of_variable() -> dict[str, str]:
    """Variable -> routes-file field, for every variable that has one."""
    fields = {f.variable(role): f"{role}.{f.name}" for role in ROLES for f in NODE}
    fields.update({o.variable: o.name for o in OPTIONS if o.variable and o.in_file})
    return fields
