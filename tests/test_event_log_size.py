"""Issue 10: a run that moves one series writes at most 50 KB of event log.

The size is of what the instance stores per event (the serialized EventLogEntry, as the per-run
SQLite file's ``event`` column holds it), so it is a byte count, not a timing: it does not
depend on the machine's load. The run is on real servers; 10 complete studies stand in for the
2,000 of the issue's measurement (the plan metadata counts complete studies, it does not list
them, so their number changes a few digits, not the size).
"""

from __future__ import annotations

from collections import Counter

import pytest
from dagster import DagsterInstance, serialize_value

from dicom_sync_dagster.synthetic import SyntheticStudy

from .helpers import moved_series, run_sync

pytestmark = pytest.mark.servers

BUDGET_BYTES = 50_000  # the 50 KB, in the bytes its ~86 KB was measured in


def test_a_run_that_moves_one_series_writes_at_most_50_kb_of_event_log(site, tmp_path):
    for hours in range(1, 11):
        site.add_local(site.add_remote(SyntheticStudy(site.ago(hours=hours), [1])))
    missing = site.add_remote(SyntheticStudy(site.ago(minutes=30), [5], accession="MOVEME"))

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        result = run_sync(site, instance)
        records = instance.all_logs(result.run_id)

    assert result.success
    assert moved_series(result) == set(missing.series_uids)  # a moving run, not an idle one
    sizes: Counter[str] = Counter()
    for record in records:
        kind = record.dagster_event.event_type_value if record.dagster_event else "LOG"
        sizes[kind] += len(serialize_value(record))
    total = sum(sizes.values())
    assert total <= BUDGET_BYTES, f"{total} bytes in {len(records)} events: {sizes.most_common()}"
