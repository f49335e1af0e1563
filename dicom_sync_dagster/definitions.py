"""The code location `dagster dev` loads (see workspace.yaml)."""

from dagster import Definitions, mem_io_manager

from .orchestration.jobs import check_connections, dicom_sync
from .orchestration.resources import (
    SyncLockResource,
    node_resource_from_env,
    options_resource_from_env,
)
from .orchestration.retention import prune_daily, prune_run_history
from .orchestration.schedules import every_minute

defs = Definitions(
    jobs=[dicom_sync, check_connections, prune_run_history],
    schedules=[every_minute, prune_daily],
    resources={
        "remote_pacs": node_resource_from_env("remote"),
        "local_pacs": node_resource_from_env("local"),
        "sync_options": options_resource_from_env(),
        "sync_lock": SyncLockResource(),
        # Frames stay in memory (one process per run): nothing pickled to disk 1,440 times a day.
        "io_manager": mem_io_manager,
    },
)
