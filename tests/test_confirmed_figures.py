"""The figures count what the local PACS confirmed, not what the remote claims; the remote's
count stands beside them and a difference is reported.

The remote is the scripted pynetdicom SCP (scripted_pacs.py): no real server sends a final
C-MOVE response without counts, or claims an instance it did not deliver, on demand. The local
PACS is a real Orthanc and its own counts are the truth here.
"""

from __future__ import annotations

import pytest
from dagster import DagsterInstance

from dicom_sync_dagster.core.summary_text import format_summary

from .helpers import report_metadata, run_state_of, run_sync, step_metadata, transfers_of
from .test_faults import FAST_RETRIES, scripted_site  # noqa: F401 - the fixture

pytestmark = pytest.mark.servers

ONE_AT_A_TIME = {**FAST_RETRIES, "max_parallel_moves": 1}  # the script's steps in plan order


def _archive_figures(result) -> dict:
    [event] = [e for e in result.all_node_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def test_a_final_response_without_counts_still_counts_every_image_that_arrived(
    scripted_site,  # noqa: F811
):
    site, study, _remote = scripted_site([14], [("quiet", 9)])

    result = run_sync(site, options=ONE_AT_A_TIME, mode="all")

    assert result.success
    [transfer] = transfers_of(result)
    assert transfer.transferred and transfer.completed == 9  # the remote's last word
    assert site.local.series_instances(study.series_uids[0]) == 14
    report = report_metadata(result)
    assert report["images_moved"] == 14
    assert report["images_reported_by_remote"] == transfer.completed
    assert step_metadata(result, "move_series")["images_moved"] == 14
    assert _archive_figures(result)["images_moved"] == 14
    assert result.dagster_run.tags["dicom-sync/images-moved"] == "14"


def test_a_claimed_success_with_an_instance_missing_counts_what_arrived(
    scripted_site,  # noqa: F811
):
    site, study, _remote = scripted_site([4, 3], ["ok", ("duplicate", 1)])

    with DagsterInstance.ephemeral() as instance:
        result = run_sync(site, instance, options=ONE_AT_A_TIME, mode="all")
        logged = [entry.user_message for entry in instance.all_logs(result.run_id)]

    assert not result.success  # the confirmation caught the missing instance
    first, second = transfers_of(result)
    assert (first.transferred, second.transferred) == (True, False)
    assert second.outcome == "success" and second.completed == 3  # what the remote claimed
    assert site.local.series_instances(study.series_uids[1]) == 2
    report = report_metadata(result)
    assert (report["images_moved"], report["images_reported_by_remote"]) == (6, 7)
    assert report["images_per_minute"] == round(6 / (report["seconds"] / 60), 1)
    note = "the remote reported 7 images sent, the local PACS confirmed 6 new images (-1)"
    assert any(note in message for message in logged)
    text = format_summary(run_state_of(result).summary)
    assert "Successfully transferred: 1/2 series (6 images)" in text
    assert f"Note: {note}" in text
