"""The code location loads as `dagster dev`'s code server loads it."""

from dagster import Definitions

from dicom_sync_dagster.definitions import defs


def test_definitions_load_like_the_code_server_loads_them():
    Definitions.validate_loadable(defs())
    repository = defs().get_repository_def()
    assert {job.name for job in repository.get_all_jobs()} >= {
        "dicom_sync",
        "check_connections",
        "prune_run_history",
    }
    assert sorted(s.name for s in repository.schedule_defs) == ["every_minute", "prune_daily"]
