"""The check_connections job against real servers."""

from __future__ import annotations

import pytest

from dicom_sync_dagster.definitions import defs
from dicom_sync_dagster.synthetic import SyntheticStudy

from .helpers import site_resources

pytestmark = pytest.mark.servers


def run_check(site):
    job = defs.resolve_job_def("check_connections")
    return job.execute_in_process(resources=site_resources(site.env()), raise_on_error=False)


def step_metadata(result) -> dict[str, object]:
    for event in result.all_node_events:
        if event.event_type_value == "STEP_OUTPUT":
            return {k: v.value for k, v in event.event_specific_data.metadata.items()}
        if event.event_type_value == "STEP_FAILURE":
            data = event.event_specific_data.user_failure_data
            return {k: v.value for k, v in data.metadata.items()}
    raise AssertionError("no output or failure")


def key_table(metadata) -> dict[str, dict[str, str]]:
    return {r.data["key"]: r.data for r in metadata["optional_return_keys"].records}


def test_orthanc_fills_every_optional_key(site):
    study = SyntheticStudy(site.ago(hours=1), [2])
    site.add_remote(study)
    site.add_local(study)

    result = run_check(site)

    assert result.success
    meta = step_metadata(result)
    assert (
        meta["remote"].startswith("remote PACS REMOTEPACS@127.0.0.1") and ": OK" in meta["remote"]
    )
    assert ": OK" in meta["local"]
    for row in key_table(meta).values():
        assert (row["remote"], row["local"]) == ("yes", "yes"), row


def test_dcmqrscp_fills_no_counts_and_a_dead_local_fails_the_check(dcmqrscp_site):
    site = dcmqrscp_site
    site.add_remote(SyntheticStudy(site.ago(hours=1), [2]))
    site.local.stop()

    result = run_check(site)

    assert not result.success
    meta = step_metadata(result)
    assert ": OK" in meta["remote"]
    assert "FAILED - cannot connect" in meta["local"]
    keys = key_table(meta)
    assert keys["NumberOfStudyRelatedInstances"]["remote"] == "no"
    assert keys["NumberOfSeriesRelatedInstances"]["remote"] == "no"
    assert keys["NumberOfStudyRelatedInstances"]["local"].startswith("not tested")
