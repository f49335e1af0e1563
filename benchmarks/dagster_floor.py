"""Dagster's own floor for a cold run: a trivial two-op job executed in process against the
instance in DAGSTER_HOME, as `dicom-sync run --once` does, with nothing else imported.

The cold case runs this as a fresh process beside `dicom-sync run --once` on empty PACS, so the
table shows how much of the cold run is Dagster's start-up and run recording, and how much is ours.
"""

import dagster as dg


@dg.op
def first() -> int:
    return 1


@dg.op
def second(value: int) -> int:
    return value


@dg.job
def floor_job() -> None:
    second(first())


if __name__ == "__main__":
    floor_job.execute_in_process(instance=dg.DagsterInstance.get())
