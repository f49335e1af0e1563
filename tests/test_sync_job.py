"""The dicom_sync job end to end against two real Orthanc servers (and dcmqrscp as a remote)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from dagster import DagsterInstance

from dicom_sync_dagster.core import plan as P
from dicom_sync_dagster.core import window as W
from dicom_sync_dagster.sandbox import OrthancServer, Peer
from dicom_sync_dagster.synthetic import SyntheticStudy, store

from .conftest import Site
from .helpers import (
    moved_series,
    plan_of,
    report_metadata,
    run_state_of,
    run_sync,
    step_metadata,
    transfers_of,
)

pytestmark = pytest.mark.servers


def reasons(result, study: SyntheticStudy) -> dict[str, str]:
    """series UID (or '' for a study-level row) -> reason, for one study."""
    rows = plan_of(result)
    rows = rows[rows["study_uid"] == study.study_uid]
    return dict(zip(rows["series_uid"], rows["reason"], strict=True))


def test_smallest_mode_moves_one_series_per_missing_study(site):
    a = site.add_remote(SyntheticStudy(site.ago(hours=2), [5, 3, 7], accession="ACC-A"))
    tie = site.add_remote(SyntheticStudy(site.ago(hours=3), [4, 4], accession="ACC-TIE"))
    present = site.add_remote(SyntheticStudy(site.ago(hours=4), [2, 3], accession="ACC-HERE"))
    site.add_local(present)
    old = site.add_remote(SyntheticStudy(site.ago(days=3), [1], accession="ACC-OLD"))
    late = site.add_remote(SyntheticStudy(site.ago(hours=12, minutes=10), [1], accession="ACC-OUT"))

    result = run_sync(site)

    assert result.success, result
    assert moved_series(result) == {a.series_uids[1], tie.series_uids[0]}
    assert site.local.series_instances(a.series_uids[1]) == 3
    assert site.local.series_instances(tie.series_uids[0]) == 4
    assert site.local.series_instances(tie.series_uids[1]) == 0
    assert site.local.instance_count() == 5 + 3 + 4
    assert reasons(result, a) == {
        a.series_uids[0]: "not the smallest series",
        a.series_uids[1]: P.REASON_MISSING,
        a.series_uids[2]: "not the smallest series",
    }
    assert reasons(result, present) == {"": P.REASON_STUDY_COMPLETE}
    assert reasons(result, late) == {"": P.REASON_OUTSIDE}
    assert old.study_uid not in set(plan_of(result)["study_uid"])  # not in the date range at all

    [archive] = result.asset_materializations_for_node("report")  # the one route's asset
    assert archive.asset_key.path == ["local_archive", "default"]
    assert archive.metadata["images_moved"].value == 3 + 4

    meta = report_metadata(result)
    assert meta["remote_studies"] == 4
    assert meta["local_studies"] == 1
    assert meta["windowed_studies"] == 3
    assert meta["missing_studies"] == 2
    assert meta["series_planned"] == 2
    assert meta["series_transferred"] == 2
    assert meta["series_failed"] == 0
    assert meta["images_moved"] == 7
    rows = meta["transfers"].records
    assert {r.data["accession"] for r in rows} == {"ACC-A", "ACC-TIE"}
    assert {r.data["outcome"] for r in rows} == {"success"}
    # Issue 13: the summary line first, then the figures in reading order, settings last;
    # the table leads with what a user recognises and ends with the study UID.
    per_minute = f"{meta['images_per_minute']:,.0f}"
    assert meta["summary"] == f"2/2 series, 7 images, {per_minute} images/min; 0 failed"
    assert list(meta)[:7] == [
        "summary",
        "remote_studies",
        "local_studies",
        "windowed_studies",
        "missing_studies",
        "series_planned",
        "series_transferred",
    ]
    assert list(meta).index("transfers") < list(meta).index("mode")
    columns = [column.name for column in meta["transfers"].schema.columns]
    assert columns[:5] == ["accession", "modality", "series_number", "outcome", "error"]
    assert columns[-1] == "study_uid"

    again = run_sync(site)
    assert again.success
    assert transfers_of(again) == []
    assert report_metadata(again)["series_planned"] == 0


def test_fewer_than_mode_moves_every_series_under_the_limit(site):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [3, 5, 10, 1]))

    result = run_sync(site, mode="fewer_than", image_limit=5)

    assert result.success
    assert moved_series(result) == {study.series_uids[0], study.series_uids[3]}
    over = "over the limit: 5 images or more"
    assert reasons(result, study)[study.series_uids[1]] == over
    assert reasons(result, study)[study.series_uids[2]] == over
    assert site.local.instance_count() == 4


def test_all_mode_completes_a_study_and_a_series_partly_on_the_local(site):
    study = site.add_remote(SyntheticStudy(site.ago(hours=5), [3, 4, 5]))
    site.add_local(study, series=[0])  # the first series complete
    site.add_local(study, series=[1], images=2)  # the second one half there

    result = run_sync(site, mode="all")

    assert result.success
    assert moved_series(result) == {study.series_uids[1], study.series_uids[2]}
    assert reasons(result, study) == {
        study.series_uids[0]: P.REASON_COMPLETE,
        study.series_uids[1]: P.REASON_INCOMPLETE,
        study.series_uids[2]: P.REASON_MISSING,
    }
    for uid, size in zip(study.series_uids, [3, 4, 5], strict=True):
        assert site.local.series_instances(uid) == size


def test_window_edges_time_formats_and_offsets(site):
    inside = site.add_remote(SyntheticStudy(site.ago(hours=11, minutes=50), [1]))
    outside = site.add_remote(SyntheticStudy(site.ago(hours=12, minutes=10), [1]))
    when = site.ago(hours=2)
    hhmm = site.add_remote(SyntheticStudy(when, [1], study_time=when.strftime("%H%M")))
    fraction = site.add_remote(SyntheticStudy(when, [1], study_time=when.strftime("%H%M%S.123456")))
    # Dated today (in the PACS zone), whatever the time of day the test runs at.
    no_time = site.add_remote(SyntheticStudy(site.ago(hours=0), [1], study_time=""))
    bad_time = site.add_remote(SyntheticStudy(site.ago(hours=0), [1], study_time="2561"))
    # 11 h before the reference in UTC-5 wall time: read in Europe/Berlin it would be 17 h old.
    ny_wall = (
        (site.reference - timedelta(hours=11))
        .astimezone(timezone(timedelta(hours=-5)))
        .replace(tzinfo=None)
    )
    offset = site.add_remote(SyntheticStudy(ny_wall, [1], tz_offset="-0500"))

    result = run_sync(site, mode="all")

    assert result.success
    moved = moved_series(result)
    for study in (inside, hhmm, fraction, no_time, bad_time, offset):
        assert study.series_uids[0] in moved, study
    assert outside.series_uids[0] not in moved
    notes = plan_of(result).set_index("study_uid")["note"]
    assert notes[no_time.study_uid] == W.TIME_MISSING
    assert notes[bad_time.study_uid] == W.TIME_INVALID
    assert notes[inside.study_uid] == ""


def test_a_local_copy_with_another_date_is_not_missing(site):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 2]))
    relabelled = dataclasses.replace(study, when=site.ago(days=400))
    site.add_local(relabelled)

    result = run_sync(site, mode="all")

    assert result.success
    assert transfers_of(result) == []
    assert reasons(result, study) == {"": P.REASON_STUDY_COMPLETE}


def test_remote_without_instance_counts_is_counted_at_image_level(dcmqrscp_site):
    site = dcmqrscp_site
    missing = site.add_remote(SyntheticStudy(site.ago(hours=1), [4, 2, 3]))
    partial = site.add_remote(SyntheticStudy(site.ago(hours=2), [2, 3]))
    site.add_local(partial, series=[0])
    complete = site.add_remote(SyntheticStudy(site.ago(hours=3), [2]))
    site.add_local(complete)

    result = run_sync(site, mode="all")

    assert result.success, result
    rows = plan_of(result).set_index("series_uid")
    assert rows.loc[missing.series_uids[0], "remote_images"] == 4  # not 0: counted
    assert moved_series(result) == {*missing.series_uids, partial.series_uids[1]}
    assert reasons(result, complete) == {complete.series_uids[0]: P.REASON_COMPLETE}
    assert site.local.instance_count() == 4 + 2 + 3 + 2 + 3 + 2


def test_dry_run_plans_but_moves_nothing(site):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 3]))

    result = run_sync(site, mode="all", dry_run=True)

    assert result.success
    assert site.local.instance_count() == 0
    assert set(plan_of(result)["action"]) == {P.MOVE}
    meta = report_metadata(result)
    assert meta["dry_run"] is True
    assert meta["series_planned"] == 2
    assert meta["series_transferred"] == 0
    assert reasons(result, study)[study.series_uids[0]] == P.REASON_MISSING


def test_failed_series_fail_the_run_after_all_were_tried(site, monkeypatch):
    site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 3]))
    env = site.env()
    env["DICOM_SYNC_MOVE_DESTINATION"] = "NOWHERE"
    monkeypatch.setattr(type(site), "env", lambda self: env)

    result = run_sync(site, mode="all")

    assert not result.success
    transfers = transfers_of(result)
    assert len(transfers) == 2  # the second series was tried after the first failed
    assert all(not t.transferred and t.outcome == "failure" for t in transfers)
    meta = report_metadata(result)
    assert meta["series_failed"] == 2
    assert len(meta["failures"].records) == 2
    assert site.local.instance_count() == 0


def test_a_dead_local_pacs_fails_the_run_instead_of_moving_everything(site):
    site.add_remote(SyntheticStudy(site.ago(hours=1), [2]))
    site.local.stop()

    result = run_sync(site, mode="all")

    assert not result.success
    failure = next(e for e in result.all_node_events if e.event_type_value == "STEP_FAILURE")
    assert failure.node_name == "query_local_studies"
    message = failure.event_specific_data.error.message
    assert "local PACS LOCALPACS@127.0.0.1" in message and str(site.local.node.port) in message
    assert "plan_transfers" not in {e.node_name for e in result.all_node_events}


def test_a_bad_setting_stops_the_run_before_any_network_traffic(site, monkeypatch):
    env = site.env()
    env["DICOM_SYNC_REMOTE_PORT"] = "70000"
    env["DICOM_SYNC_LOCAL_AE"] = "A\\B"
    monkeypatch.setattr(type(site), "env", lambda self: env)

    result = run_sync(site)

    assert not result.success
    failure = next(e for e in result.all_node_events if e.event_type_value == "STEP_FAILURE")
    assert failure.node_name == "start_cycle"
    message = failure.event_specific_data.error.message
    assert "DICOM_SYNC_REMOTE_PORT='70000'" in message
    assert "DICOM_SYNC_LOCAL_AE='A\\\\B'" in message
    assert {e.node_name for e in result.all_node_events} == {"start_cycle"}


def test_parallel_moves_report_every_series_in_plan_order(site):
    studies = [site.add_remote(SyntheticStudy(site.ago(hours=h), [3, 2, 4])) for h in (1, 2)]

    result = run_sync(site, options={"max_parallel_moves": 4}, mode="all")

    assert result.success
    planned = plan_of(result)
    planned = planned[planned["action"] == P.MOVE]
    transfers = transfers_of(result)
    assert [t.series_uid for t in transfers] == planned["series_uid"].tolist()
    assert len(transfers) == 6 and all(t.transferred for t in transfers)
    assert {t.series_uid: t.completed for t in transfers} == {
        uid: size for s in studies for uid, size in zip(s.series_uids, [3, 2, 4], strict=True)
    }
    assert site.local.instance_count() == 18
    assert run_state_of(result).transfers.seconds > 0


def test_a_series_failing_run_after_run_is_reported_with_its_streak(site, tmp_path, monkeypatch):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2]))
    env = site.env() | {"DICOM_SYNC_MOVE_DESTINATION": "NOWHERE"}
    monkeypatch.setattr(type(site), "env", lambda self: env)

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        results = [run_sync(site, instance, mode="all") for _ in range(3)]
        record = instance.get_run_record_by_id(results[0].run_id)
        first_start, first_end = record.start_time, record.end_time

    assert not any(r.success for r in results)
    for number, result in enumerate(results, start=1):
        [failure] = report_metadata(result)["failures"].records
        assert failure.data["series_uid"] == study.series_uids[0]
        assert failure.data["failing_runs"] == number
    sinces = [report_metadata(r)["failures"].records[0].data["failing_since"] for r in results]
    assert sinces[0] == sinces[1] == sinces[2]  # carried on from the first failing run
    first = datetime.fromisoformat(sinces[0]).timestamp()
    assert first_start - 1 <= first <= first_end + 1


@pytest.fixture
def capped_site(tmp_path, local_orthanc):
    """A remote Orthanc that answers at most 5 matches per C-FIND (LimitFindResults)."""
    remote = OrthancServer(
        tmp_path / "capped",
        "REMOTEPACS",
        [Peer("DICOMSYNC"), Peer(local_orthanc.node.ae_title, local_orthanc.node.port)],
        extra={"LimitFindResults": 5},
    ).start()
    yield Site(remote, local_orthanc, datetime.now(timezone.utc).replace(microsecond=0))
    remote.stop()


def test_a_remote_that_caps_its_answers_is_asked_in_smaller_ranges(capped_site):
    site = capped_site
    studies = [
        site.add_remote(SyntheticStudy(site.ago(hours=h, minutes=7), [1])) for h in range(14)
    ]

    result = run_sync(site, mode="all", window_hours=24)

    assert result.success, result
    assert report_metadata(result)["remote_studies"] == 14
    assert moved_series(result) == {s.series_uids[0] for s in studies}


@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192"])
def test_other_character_sets_are_read_right(site, charset):
    study = site.add_remote(
        SyntheticStudy(site.ago(hours=1), [2], charset=charset, series_label="Schädel ñ")
    )

    result = run_sync(site, mode="all")

    assert result.success
    assert plan_of(result).loc[0, "series_description"] == "Schädel ñ 1 (2 images)"
    assert moved_series(result) == {study.series_uids[0]}


def test_thousands_of_answers(site):
    studies = [SyntheticStudy(site.ago(hours=1, seconds=i), [1]) for i in range(2000)]
    store(site.remote.node, [ds for s in studies for ds in s.datasets()])

    result = run_sync(site, mode="all", dry_run=True)

    assert result.success
    reasons = plan_of(result)["reason"].value_counts().to_dict()
    assert reasons == {"selected: not on local": 2000}, reasons
    meta = report_metadata(result)
    assert (meta["remote_studies"], meta["windowed_studies"], meta["series_planned"]) == (
        2000,
        2000,
        2000,
    )


def test_local_objects_of_its_own_do_not_hide_a_missing_series(site):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [3, 2]))
    site.add_local(study, series=[0])
    made_locally = dataclasses.replace(study, series_sizes=[4], series_uids=[], modality="PR")
    site.add_local(made_locally)  # the local now holds 7 images of the study, the remote 5

    result = run_sync(site, mode="all")

    assert result.success
    assert moved_series(result) == {study.series_uids[1]}
    assert site.local.series_instances(study.series_uids[1]) == 2


def test_a_study_with_nothing_to_move_is_not_listed_again_until_its_counts_change(site, tmp_path):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [5, 3]))

    def queries_of(result):
        return run_state_of(result).plan.queries

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        first = run_sync(site, instance)  # smallest: moves the 3-image series
        second = run_sync(site, instance)  # looks at the series: nothing to move
        third = run_sync(site, instance)  # counts unchanged: no series queries
        extra = dataclasses.replace(study, series_sizes=[1], series_uids=[])
        site.add_remote(extra)  # a new 1-image series arrives on the remote
        fourth = run_sync(site, instance)

    assert moved_series(first) == {study.series_uids[1]}
    assert transfers_of(second) == [] and queries_of(second)["remote_series_queries"] == 1
    assert transfers_of(third) == []
    assert queries_of(third)["remote_series_queries"] == 0
    assert queries_of(third)["settled_studies_skipped"] == 1
    assert reasons(third, study) == {"": P.REASON_SETTLED}
    assert moved_series(fourth) == {extra.series_uids[0]}  # the new smallest series


def test_after_an_outage_the_window_reaches_back_to_the_last_run(site, tmp_path):
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        before = site.reference - timedelta(hours=20)
        assert run_sync(site, instance, reference_time=before.isoformat()).success
        # Then nothing ran for 20 hours; meanwhile a study was acquired 15 hours ago.
        study = site.add_remote(SyntheticStudy(site.ago(hours=15), [2], accession="ACC-GAP"))

        without = run_sync(site, instance, options={"catch_up_max_hours": 0}, dry_run=True)
        exact = run_sync(site, instance, catch_up=False, dry_run=True)
        wider = run_sync(site, instance, window_hours=14, dry_run=True)
        caught_up = run_sync(site, instance)

    assert reasons(without, study) == {"": P.REASON_OUTSIDE}  # the 12-hour window alone
    assert reasons(exact, study) == {"": P.REASON_OUTSIDE}  # catch_up: false, as launched
    assert step_metadata(exact, "start_cycle")["window_hours"] == 12
    # A window chosen in the Launchpad catches up too (catch_up is prefilled true).
    assert step_metadata(wider, "start_cycle")["window_hours"] == pytest.approx(20, abs=0.01)
    assert caught_up.success
    assert moved_series(caught_up) == set(study.series_uids)
    start = step_metadata(caught_up, "start_cycle")
    assert start["window_hours"] == pytest.approx(20, abs=0.01)


def test_the_plan_metadata_lists_the_rows_to_act_on_and_counts_the_rest(site):
    """Issue 10: a row per complete study would fill the event log every run."""
    new = site.add_remote(SyntheticStudy(site.ago(hours=1), [2], accession="ACC-NEW"))
    for hours in (2, 3, 4):
        here = site.add_remote(SyntheticStudy(site.ago(hours=hours), [1]))
        site.add_local(here)

    result = run_sync(site)

    assert result.success
    meta = step_metadata(result, "plan_transfers")
    listed = [record.data for record in meta["plan"].records]
    assert [(r["study_uid"], r["action"]) for r in listed] == [(new.study_uid, P.MOVE)]
    assert meta["reasons"] == {P.REASON_STUDY_COMPLETE: 3, P.REASON_MISSING: 1}
