"""The check_connections job against real servers."""

from __future__ import annotations

import pytest

from dicom_sync_dagster.definitions import defs
from dicom_sync_dagster.synthetic import SyntheticStudy

from .helpers import site_resources, step_metadata

pytestmark = pytest.mark.servers


def run_check(site):
    job = defs().resolve_job_def("check_connections")
    return job.execute_in_process(resources=site_resources(site.env()), raise_on_error=False)


def key_table(metadata) -> dict[str, dict[str, str]]:
    return {r.data["key"]: r.data for r in metadata["optional_return_keys"].records}


def test_orthanc_fills_every_optional_key(site):
    study = SyntheticStudy(site.ago(hours=1), [2])
    site.add_remote(study)
    site.add_local(study)

    result = run_check(site)

    assert result.success
    meta = step_metadata(result, "check_nodes")
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
    meta = step_metadata(result, "check_nodes")
    assert ": OK" in meta["remote"]
    assert "FAILED - cannot connect" in meta["local"]
    keys = key_table(meta)
    assert keys["NumberOfStudyRelatedInstances"]["remote"] == "no"
    assert keys["NumberOfSeriesRelatedInstances"]["remote"] == "no"
    assert keys["NumberOfStudyRelatedInstances"]["local"].startswith("not tested")
