"""Patient-identifying data stays out of the event log and metadata of a real run."""

from __future__ import annotations

import json

import pytest
from dagster import DagsterInstance
from dagster._serdes import serialize_value

from dicom_sync_dagster.synthetic import SyntheticStudy

from .helpers import run_sync

pytestmark = pytest.mark.servers


def test_a_run_records_no_patient_names_ids_or_birth_dates(site, tmp_path):
    study = SyntheticStudy(site.ago(hours=1), [2, 3], patient_name="MÜLLER^JÜRGEN")
    site.add_remote(study)
    secrets = ["MÜLLER", "JÜRGEN", "MULLER", "19700101", f"PID{study.study_uid[-6:]}"]

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        result = run_sync(site, instance, mode="all")
        assert result.success
        records = instance.all_logs(result.run_id)
        text = "\n".join(serialize_value(record) for record in records)
        run_text = serialize_value(instance.get_run_by_id(result.run_id))

    assert len(records) > 20  # the whole run is there: not an empty log that proves nothing
    assert study.study_uid in text  # study-level identifiers are shown, on purpose
    for secret in secrets:
        escaped = json.dumps(secret)[1:-1]  # the event log's JSON writes Ü as \u00dc
        for form in {secret, escaped}:
            assert form not in text, form
            assert form not in run_text, form
