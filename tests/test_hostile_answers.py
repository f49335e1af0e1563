"""What a broken or hostile remote says is checked before it is used (issue 14): invalid UIDs
are dropped with a warning naming the node and the row and never sent on, impossible counts
become unknown, and peer text is escaped wherever it is shown.

The remote is the scripted pynetdicom SCP (tests/scripted_pacs.py), because no real server
answers with a UID '*' or a count of 1e20 on demand; the local PACS is a real Orthanc and
receives the good study for real."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance
from pydicom.dataset import Dataset

from dicom_sync_dagster.synthetic import SyntheticStudy

from .conftest import Site, scripted_site
from .helpers import moved_series, plan_of, run_state_of, run_sync
from .scripted_pacs import ScriptedPacs

pytestmark = pytest.mark.servers

pytestmark = pytest.mark.usefixtures("both_paths")  # raw and public path
HOSTILE_ACCESSION = "A1\x1b]0;pwned\x07\nERROR forged line\x1b[2J"


@pytest.fixture
def hostile_site(local_orthanc, scripted_remote):
    def make(extra: list[Dataset], accession: str = "ACC-H") -> tuple[Site, object, ScriptedPacs]:
        site = scripted_site(local_orthanc)
        study = SyntheticStudy(site.ago(hours=1), [2], accession=accession)
        for answer in extra:  # in the window, like the good study, unless dated already
            if "StudyDate" in answer:
                continue
            answer.StudyDate = study.datasets()[0].StudyDate
            answer.StudyTime = study.datasets()[0].StudyTime
        return site, study, scripted_remote(site, study, ae_title="HOSTILE", extra_studies=extra)

    return make


def answer(uid: str, **elements: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = uid
    ds.AccessionNumber = "BAD-1"
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def run_logged(site, **config) -> tuple[object, list[str]]:
    """The run's result and every message it logged."""
    instance = DagsterInstance.ephemeral()
    result = run_sync(site, instance, **config)
    return result, [entry.user_message for entry in instance.all_logs(result.run_id)]


BAD_UIDS = ["*", "1.2.3?4", "1.2.826.0.1\\1.2.826.0.2", "1." + "2" * 80]


def test_answers_with_invalid_uids_are_dropped_named_and_the_good_study_moved(hostile_site):
    """Before: a '*' went into the local lookup, the local answered 0xC000, the plan failed
    and nothing was moved (the error blamed the local PACS); a two-valued or 82-character UID
    was passed on as it was."""
    site, study, remote = hostile_site([answer(uid) for uid in BAD_UIDS])

    result, lines = run_logged(site, mode="all")

    assert result.success
    assert moved_series(result) == set(study.series_uids)
    assert set(plan_of(result)["study_uid"]) == {study.study_uid}
    asked = remote.finds[1:]  # after the study query: series lists, image counts
    assert not [uid for uid in asked if any(bad in uid for bad in BAD_UIDS)]
    dropped = [m for m in lines if "an answer was dropped" in m]
    assert len(dropped) == len(BAD_UIDS)
    assert all(m.startswith("remote PACS HOSTILE@127.0.0.1") for m in dropped)
    assert any("is 82 characters long (at most 64)" in m for m in dropped)
    assert any("accession=BAD-1" in m for m in dropped)  # the row is named


def test_a_count_no_pacs_can_hold_is_unknown_not_a_crash(hostile_site):
    """Before: NumberOfStudyRelatedInstances 1e20 crashed the query step with a TypeError
    naming no node."""
    huge = answer("1.2.826.0.1.3680043.9.99", NumberOfStudyRelatedInstances="1" + "0" * 20)
    site, study, _remote = hostile_site([huge])

    result = run_sync(site, mode="all")

    assert result.success
    remote_studies = run_state_of(result).remote_studies
    row = remote_studies[remote_studies["study_uid"] == "1.2.826.0.1.3680043.9.99"].iloc[0]
    assert row["images"] is __import__("pandas").NA
    assert moved_series(result) == set(study.series_uids)


@pytest.mark.parametrize(
    ("study_date", "study_time", "offset"),
    [("99991231", "235959", ""), ("99991231", "235959", "-1200"), ("00010101", "000000", "+1400")],
    ids=["year-9999", "year-9999-west", "year-1-east"],
)
def test_a_study_dated_where_no_clock_can_be_is_out_of_the_window_not_a_crash(
    hostile_site, study_date, study_time, offset
):
    """Valid DICOM dates, but past the years pandas holds (1677-2262) or past year 1-9999
    once moved to UTC. Before: OutOfBoundsDatetime / OverflowError in the plan step, naming
    no node; the good study was not moved."""
    far = answer("1.2.826.0.1.3680043.9.98", StudyDate=study_date, StudyTime=study_time)
    if offset:
        far.TimezoneOffsetFromUTC = offset
    site, study, _remote = hostile_site([far])

    result = run_sync(site, mode="all")

    assert result.success
    assert moved_series(result) == set(study.series_uids)
    plan = plan_of(result)
    far_rows = plan[plan["study_uid"] == "1.2.826.0.1.3680043.9.98"]
    assert set(far_rows["action"]) <= {"skip"}, far_rows  # out of the window, never moved


def test_escape_sequences_in_peer_text_are_escaped_in_every_log_line(hostile_site):
    """Before: the accession number went raw into the log and the terminal: a forged 'ERROR'
    line, a cleared screen, a changed window title."""
    site, _study, _remote = hostile_site([], accession=HOSTILE_ACCESSION)

    result, lines = run_logged(site, mode="all")

    assert result.success
    assert not [m for m in lines if "\x1b" in m or "\x07" in m or "\nERROR" in m]
    assert any("A1\\x1b]0;pwned\\x07\\nERROR forged line\\x1b[2J" in m for m in lines)
