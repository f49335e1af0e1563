"""Selection, the study/series diff, the plan and the run summary (pure, no network)."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

from dicom_sync_dagster.core.frames import STUDY_COLUMNS, series_frame, study_frame
from dicom_sync_dagster.core.plan import (
    ABSENT,
    CHECK,
    COMPLETE,
    MOVE,
    PLAN_COLUMNS,
    REASON_COMPLETE,
    REASON_EMPTY,
    REASON_INCOMPLETE,
    REASON_MISSING,
    REASON_NO_SERIES,
    REASON_OUTSIDE,
    REASON_STUDY_COMPLETE,
    SKIP,
    build_plan,
    classify_studies,
    moves,
    needs_series_query,
)
from dicom_sync_dagster.core.selection import Mode, Selection
from dicom_sync_dagster.core.summary import CycleSummary, missing_study_count, summarize
from dicom_sync_dagster.core.summary_text import format_summary
from dicom_sync_dagster.core.transfers import Transfer
from dicom_sync_dagster.core.window import Window, apply_window

UTC = timezone.utc
WINDOW = Window(datetime(2025, 10, 6, 12, 0, tzinfo=UTC), 12, UTC)
NOT_SMALLEST = "not the smallest series"

SMALLEST = Selection()
FEWER_THAN_5 = Selection(Mode.fewer_than, 5)
ALL = Selection(Mode.all)


def studies(*rows: dict) -> pd.DataFrame:
    blank = {c: "" for c in STUDY_COLUMNS if c not in ("series_count", "images")}
    return study_frame([{**blank, **row} for row in rows])


def remote(uid: str, images: int | None, *, inside: bool = True, hour: int = 10, **extra):
    """A remote study row: ``inside`` the window (today at ``hour``) or five days back."""
    day = "20251006" if inside else "20251001"
    return {
        "study_uid": uid,
        "study_date": day,
        "study_time": f"{hour:02d}0000",
        "images": images,
        **extra,
    }


def local(uid: str, images: int | None, **extra):
    return {"study_uid": uid, "images": images, **extra}


def series(study_uid: str, series_uid: str, images: int | None, number: int | None = None, **extra):
    blank = {"modality": "", "description": ""}
    return {
        **blank,
        "study_uid": study_uid,
        "series_uid": series_uid,
        "images": images,
        "series_number": number,
        **extra,
    }


def classify(remote_rows, local_rows=()) -> pd.DataFrame:
    return classify_studies(apply_window(studies(*remote_rows), WINDOW), studies(*local_rows))


def plan_for(remote_rows, local_rows, remote_series, local_series, selection):
    return build_plan(
        classify(remote_rows, local_rows),
        series_frame(remote_series),
        series_frame(local_series),
        selection,
    )


def by_series(plan: pd.DataFrame) -> dict[str, tuple[str, str]]:
    rows = plan[plan["series_uid"] != ""]
    return {r.series_uid: (r.action, r.reason) for r in rows.itertuples()}


def by_study(plan: pd.DataFrame) -> dict[str, tuple[str, str]]:
    rows = plan[plan["series_uid"] == ""]
    return {r.study_uid: (r.action, r.reason) for r in rows.itertuples()}


# --- Selection --------------------------------------------------------------------------


def test_default_selection_is_smallest():
    assert Selection().mode is Mode.smallest
    assert Selection("all").mode is Mode.all  # strings are coerced to the enum


@pytest.mark.parametrize("limit", [None, 0, -1, True, False, 2.5, "10"])
def test_fewer_than_needs_a_whole_number_limit_of_at_least_one(limit):
    with pytest.raises(ValueError, match="image_limit") as excinfo:
        Selection(Mode.fewer_than, limit)
    assert repr(limit) in str(excinfo.value)


def test_fewer_than_accepts_one():
    assert Selection("fewer_than", 1).image_limit == 1


def test_limit_only_checked_for_fewer_than():
    assert Selection(Mode.all, None).mode is Mode.all
    assert Selection(Mode.smallest, 0).mode is Mode.smallest


def test_unknown_mode_rejected():
    with pytest.raises(ValueError):
        Selection("largest")


def test_describe():
    assert Selection().describe() == "smallest series per study"
    assert Selection("fewer_than", 7).describe() == "series with < 7 images"
    assert Selection("all").describe() == "all series"


def _wanted(selection: Selection, rows) -> dict[str, tuple[bool, str]]:
    frame = series_frame(rows)
    wanted, why = selection.wanted(frame)
    return {uid: (bool(w), y) for uid, w, y in zip(frame["series_uid"], wanted, why, strict=True)}


def test_smallest_picks_fewest_images_per_study():
    result = _wanted(
        SMALLEST,
        [
            series("A", "a1", 30, 1),
            series("A", "a2", 4, 2),
            series("A", "a3", 9, 3),
            series("B", "b1", 100, 1),
        ],
    )
    assert result == {
        "a1": (False, NOT_SMALLEST),
        "a2": (True, ""),
        "a3": (False, NOT_SMALLEST),
        "b1": (True, ""),  # the only series of its study
    }


def test_smallest_ties_go_to_the_lowest_series_number():
    result = _wanted(
        SMALLEST,
        [
            series("A", "a3", 4, 3),
            series("A", "a1", 4, 10),
            series("A", "a2", 4, 2),
        ],
    )
    assert [uid for uid, (w, _) in result.items() if w] == ["a2"]


def test_smallest_missing_series_number_sorts_last():
    result = _wanted(
        SMALLEST,
        [
            series("A", "a0", 4, None),
            series("A", "a9", 4, 99),
        ],
    )
    assert result["a9"] == (True, "")
    assert result["a0"] == (False, NOT_SMALLEST)


def test_smallest_unknown_image_count_sorts_last():
    result = _wanted(
        SMALLEST,
        [
            series("A", "unknown", None, 1),
            series("A", "known", 500, 2),
        ],
    )
    assert result["known"][0]
    assert not result["unknown"][0]


def test_smallest_full_tie_goes_to_the_lowest_uid():
    result = _wanted(SMALLEST, [series("A", "a2", 4, 1), series("A", "a1", 4, 1)])
    assert result == {"a2": (False, NOT_SMALLEST), "a1": (True, "")}


def test_fewer_than_is_strictly_less_than_the_limit():
    result = _wanted(
        FEWER_THAN_5,
        [
            series("A", "a4", 4, 1),
            series("A", "a5", 5, 2),
            series("A", "a6", 6, 3),
            series("B", "b0", 0, 1),
        ],
    )
    over = "over the limit: 5 images or more"
    assert result == {"a4": (True, ""), "a5": (False, over), "a6": (False, over), "b0": (True, "")}


def test_fewer_than_unknown_count_is_not_wanted():
    result = _wanted(FEWER_THAN_5, [series("A", "a", None, 1)])
    assert not result["a"][0]


def test_all_wants_everything():
    result = _wanted(ALL, [series("A", "a", 1000, 1), series("A", "b", None), series("B", "c", 0)])
    assert result == {"a": (True, ""), "b": (True, ""), "c": (True, "")}


# --- classify_studies / needs_series_query ----------------------------------------------


def test_classify_absent_complete_check():
    classified = classify(
        [
            remote("absent", 10),
            remote("complete", 10),
            remote("more_local", 10),
            remote("fewer_local", 10),
            remote("remote_unknown", None),
            remote("local_unknown", 10),
        ],
        [
            local("complete", 10),
            local("more_local", 12),
            local("fewer_local", 9),
            local("remote_unknown", 10),
            local("local_unknown", None),
            local("not_on_remote", 5),
        ],
    ).set_index("study_uid")
    assert classified["status"].to_dict() == {
        "absent": ABSENT,
        "complete": COMPLETE,
        # More images locally may be objects made there (reports, presentation states) while a
        # series is still missing: only equal counts skip the series-level look.
        "more_local": CHECK,
        "fewer_local": CHECK,
        "remote_unknown": CHECK,
        "local_unknown": CHECK,
    }
    assert pd.isna(classified.loc["absent", "local_images"])
    assert classified.loc["fewer_local", "local_images"] == 9
    assert str(classified["local_images"].dtype) == "Int64"


def test_classify_matches_local_by_uid_only():
    classified = classify(
        [remote("uid-1", 4, accession="ACC")],
        [local("uid-1", 4, study_date="19990101", study_time="000000", accession="OTHER")],
    )
    assert classified["status"].tolist() == [COMPLETE]


def test_classify_keeps_out_of_window_rows_and_columns():
    classified = classify([remote("old", 3, inside=False), remote("new", 3)])
    assert classified["study_uid"].tolist() == ["old", "new"]
    assert classified["in_window"].tolist() == [False, True]
    assert classified["status"].tolist() == [ABSENT, ABSENT]


def test_needs_series_query():
    classified = classify(
        [
            remote("absent", 10, hour=11),
            remote("check", 10, hour=10),
            remote("complete", 10, hour=9),
            remote("old_absent", 10, inside=False),
            remote("old_check", 10, inside=False),
        ],
        [local("check", 3), local("complete", 10), local("old_check", 3)],
    )
    remote_uids, local_uids = needs_series_query(classified)
    assert remote_uids == ["absent", "check"]
    assert local_uids == ["check"]


# --- build_plan -------------------------------------------------------------------------


def test_plan_reason_missing_and_incomplete():
    plan = plan_for(
        [remote("absent", 5), remote("partial", 9)],
        [local("partial", 3)],
        [
            series("absent", "a1", 5, 1),
            series("partial", "p1", 6, 1),
            series("partial", "p2", 3, 2),
        ],
        [series("partial", "p1", 2), series("partial", "p2", 1)],
        ALL,
    )
    rows = plan.set_index("series_uid")
    assert by_series(plan) == {
        "a1": (MOVE, REASON_MISSING),
        "p1": (MOVE, REASON_INCOMPLETE),
        "p2": (MOVE, REASON_INCOMPLETE),
    }
    assert rows.loc["a1", "local_images"] == 0
    assert rows.loc["p1", "local_images"] == 2
    assert rows.loc["p1", "remote_images"] == 6


def test_plan_reason_series_complete():
    plan = plan_for(
        [remote("s", 9)],
        [local("s", 5)],
        [
            series("s", "done", 5, 1),
            series("s", "more_than_remote", 1, 2),
            series("s", "todo", 3, 3),
        ],
        [series("s", "done", 5), series("s", "more_than_remote", 2)],
        ALL,
    )
    assert by_series(plan) == {
        "done": (SKIP, REASON_COMPLETE),
        "more_than_remote": (SKIP, REASON_COMPLETE),
        "todo": (MOVE, REASON_MISSING),
    }


def test_plan_reason_study_complete_ignores_its_series():
    plan = plan_for(
        [remote("s", 9)],
        [local("s", 9)],
        [series("s", "s1", 9, 1)],  # listed anyway: must not be planned
        [],
        ALL,
    )
    assert len(plan) == 1
    row = plan.iloc[0]
    assert (row["study_uid"], row["series_uid"], row["action"], row["reason"]) == (
        "s",
        "",
        SKIP,
        REASON_STUDY_COMPLETE,
    )
    assert (row["remote_images"], row["local_images"]) == (9, 9)


def test_plan_reason_outside_the_window():
    plan = plan_for(
        [remote("old", 4, inside=False)],
        [],
        [series("old", "o1", 4, 1)],
        [],
        ALL,
    )
    assert len(plan) == 1
    assert by_study(plan) == {"old": (SKIP, REASON_OUTSIDE)}
    assert plan.iloc[0]["remote_images"] == 4
    assert pd.isna(plan.iloc[0]["local_images"])


def test_plan_reason_empty_series():
    plan = plan_for(
        [remote("s", 3)],
        [],
        [series("s", "empty", 0, 1), series("s", "full", 3, 2)],
        [],
        ALL,
    )
    assert by_series(plan) == {"empty": (SKIP, REASON_EMPTY), "full": (MOVE, REASON_MISSING)}


def test_plan_reason_no_series_listed():
    plan = plan_for(
        [remote("lonely", 3), remote("partly", 8)],
        [local("partly", 2)],
        [],
        [],
        SMALLEST,
    )
    assert by_study(plan) == {
        "lonely": (SKIP, REASON_NO_SERIES),
        "partly": (SKIP, REASON_NO_SERIES),
    }


def test_plan_reason_not_the_smallest():
    plan = plan_for(
        [remote("s", 13)],
        [],
        [series("s", "big", 10, 1), series("s", "small", 3, 2)],
        [],
        SMALLEST,
    )
    assert by_series(plan) == {"big": (SKIP, NOT_SMALLEST), "small": (MOVE, REASON_MISSING)}


def test_plan_reason_over_the_limit():
    plan = plan_for(
        [remote("s", 13)],
        [],
        [series("s", "under", 4, 1), series("s", "at", 5, 2), series("s", "over", 40, 3)],
        [],
        FEWER_THAN_5,
    )
    over = "over the limit: 5 images or more"
    assert by_series(plan) == {
        "under": (MOVE, REASON_MISSING),
        "at": (SKIP, over),
        "over": (SKIP, over),
    }


def test_smallest_skips_empty_series_when_picking():
    plan = plan_for(
        [remote("s", 7)],
        [],
        [series("s", "empty", 0, 1), series("s", "small", 2, 2), series("s", "big", 5, 3)],
        [],
        SMALLEST,
    )
    assert moves(plan)["series_uid"].tolist() == ["small"]


# A study partly on the local: every mode must leave the complete series alone.
PARTLY_REMOTE = [remote("p", 18)]
PARTLY_LOCAL = [local("p", 7)]
PARTLY_SERIES = [
    series("p", "small_done", 2, 1),
    series("p", "small_todo", 3, 2),
    series("p", "mid_half", 4, 3),
    series("p", "big_done", 9, 4),
]
PARTLY_LOCAL_SERIES = [
    series("p", "small_done", 2),
    series("p", "mid_half", 2),
    series("p", "big_done", 9),
]


OVER_5 = "over the limit: 5 images or more"
OVER_4 = "over the limit: 4 images or more"


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (
            ALL,
            {
                "small_done": (SKIP, REASON_COMPLETE),
                "small_todo": (MOVE, REASON_MISSING),
                "mid_half": (MOVE, REASON_INCOMPLETE),
                "big_done": (SKIP, REASON_COMPLETE),
            },
        ),
        (
            FEWER_THAN_5,
            {
                "small_done": (SKIP, REASON_COMPLETE),
                "small_todo": (MOVE, REASON_MISSING),
                "mid_half": (MOVE, REASON_INCOMPLETE),
                "big_done": (SKIP, OVER_5),
            },
        ),
        (
            Selection(Mode.fewer_than, 4),
            {
                "small_done": (SKIP, REASON_COMPLETE),
                "small_todo": (MOVE, REASON_MISSING),
                "mid_half": (SKIP, OVER_4),
                "big_done": (SKIP, OVER_4),
            },
        ),
        # The smallest series is already complete: nothing more for this study.
        (
            SMALLEST,
            {
                "small_done": (SKIP, REASON_COMPLETE),
                "small_todo": (SKIP, NOT_SMALLEST),
                "mid_half": (SKIP, NOT_SMALLEST),
                "big_done": (SKIP, NOT_SMALLEST),
            },
        ),
    ],
)
def test_every_mode_moves_only_series_not_complete_on_local(selection, expected):
    plan = plan_for(PARTLY_REMOTE, PARTLY_LOCAL, PARTLY_SERIES, PARTLY_LOCAL_SERIES, selection)
    assert by_series(plan) == expected
    moved = moves(plan)
    assert (moved["local_images"] < moved["remote_images"]).all()
    assert not {"small_done", "big_done"} & set(moved["series_uid"])


def test_smallest_moves_the_smallest_when_it_is_missing():
    local_series = [
        series("p", "small_done", 1),
        series("p", "mid_half", 2),
        series("p", "big_done", 9),
    ]
    plan = plan_for(PARTLY_REMOTE, PARTLY_LOCAL, PARTLY_SERIES, local_series, SMALLEST)
    moved = moves(plan)
    assert moved["series_uid"].tolist() == ["small_done"]
    assert moved["reason"].tolist() == [REASON_INCOMPLETE]


def test_plan_layout_and_order():
    plan = plan_for(
        [
            remote("older", 4, hour=8, accession="ACC-OLD"),
            remote("newer", 4, hour=10, accession="ACC-NEW"),
            remote("old", 4, inside=False),
            remote("done", 4, hour=9),
        ],
        [local("done", 4)],
        [
            series("older", "o2", 2, 2),
            series("older", "o1", 2, 1),
            series("newer", "n1", 4, 1, modality="CT", description="head"),
        ],
        [],
        ALL,
    )
    assert list(plan.columns) == PLAN_COLUMNS
    assert len(plan) == 5  # three series rows, two study rows
    # Moves first; within them the newest study first, then by SeriesNumber.
    assert plan["series_uid"].tolist()[:3] == ["n1", "o1", "o2"]
    assert plan["action"].tolist() == [MOVE, MOVE, MOVE, SKIP, SKIP]
    n1 = plan.iloc[0]
    assert (n1["accession"], n1["modality"], n1["series_description"]) == ("ACC-NEW", "CT", "head")
    assert n1["study_datetime"] == pd.Timestamp("2025-10-06 10:00", tz="UTC")
    for column in ("series_number", "remote_images", "local_images"):
        assert str(plan[column].dtype) == "Int64"
    assert (plan["note"] == "").all()


def test_plan_carries_the_window_note():
    plan = plan_for(
        [{"study_uid": "s", "study_date": "20251006", "study_time": "", "images": 2}],
        [],
        [series("s", "s1", 2, 1)],
        [],
        ALL,
    )
    assert plan["note"].tolist() == ["StudyTime missing: kept"]
    assert plan["action"].tolist() == [MOVE]


def test_plan_of_no_studies_is_empty():
    plan = plan_for([], [], [], [], SMALLEST)
    assert plan.empty
    assert list(plan.columns) == PLAN_COLUMNS


# --- report -----------------------------------------------------------------------------


def transfer(
    uid: str, *, transferred: bool, completed: int, arrived: int | None = None, before: int = 0
) -> Transfer:
    """A series the remote reports ``completed`` sub-operations for, and of which the local
    then holds ``before`` + ``arrived`` images (``arrived`` defaults to ``completed``)."""
    return Transfer(
        local_images=before + (completed if arrived is None else arrived),
        local_images_before=before,
        study_uid="st",
        series_uid=uid,
        accession="",
        modality="CT",
        series_number=1,
        series_description="",
        images=completed,
        outcome="success" if transferred else "failure",
        transferred=transferred,
        completed=completed,
    )


def _summary(*, dry_run: bool, transfers: list[Transfer], seconds: float) -> CycleSummary:
    return summarize(
        mode="smallest",
        dry_run=dry_run,
        reference_time="2025-10-06T12:00:00+00:00",
        date_range="20251005-20251006",
        remote_studies=7,
        local_studies=4,
        windowed_studies=5,
        missing_studies=2,
        series_planned=3,
        transfers=transfers,
        seconds=seconds,
    )


def test_summarize_counts_transfers_and_failures():
    summary = _summary(
        dry_run=False,
        transfers=[
            transfer("a", transferred=True, completed=100),
            transfer("b", transferred=True, completed=20),
            transfer("c", transferred=False, completed=3, arrived=1, before=4),
        ],
        seconds=30.0,
    )
    assert summary.series_transferred == 2
    assert summary.series_failed == 1
    assert summary.images_moved == 121  # what the local PACS gained, by its own counts
    assert summary.images_reported_by_remote == 123  # what the remote said it sent
    assert not summary.ok
    assert summary.images_per_minute == pytest.approx(242.0)
    assert summary.as_dict()["images_per_minute"] == 242.0
    assert "the remote reported 123 images sent, the local PACS confirmed 121" in (
        summary.claims_note
    )
    assert summary.as_dict()["series_failed"] == 1


def test_summarize_counts_a_planned_series_never_tried_as_failed():
    summary = _summary(
        dry_run=False, transfers=[transfer("a", transferred=True, completed=5)], seconds=10
    )
    assert summary.series_failed == 2


def test_summarize_dry_run_fails_nothing():
    summary = _summary(dry_run=True, transfers=[], seconds=1.0)
    assert summary.series_transferred == 0
    assert summary.series_failed == 0
    assert summary.ok


@pytest.mark.parametrize(
    ("images", "seconds", "rate"),
    [(0, 0.0, 0.0), (10, 0.0, 0.0), (60, 60.0, 60.0), (1, 0.5, 120.0)],
)
def test_images_per_minute(images, seconds, rate):
    summary = CycleSummary("all", False, "", "", 0, 0, 0, 0, 0, 0, 0, images, seconds)
    assert summary.images_per_minute == pytest.approx(rate)


def test_format_summary_dry_run():
    text = format_summary(_summary(dry_run=True, transfers=[], seconds=2.0))
    lines = text.splitlines()
    assert lines[0] == "RESULTS SUMMARY"
    assert "Remote studies found: 7" in lines
    assert "Local studies found:  4" in lines
    assert "In the window:        5" in lines
    assert "Missing on local:     2" in lines
    assert "Found 3 series to transfer (smallest)" in lines
    assert lines[-1] == "Dry run: nothing was moved."
    assert "Transfer statistics" not in text


def test_format_summary_transfer_statistics():
    summary = _summary(
        dry_run=False,
        transfers=[
            transfer("a", transferred=True, completed=90),
            transfer("b", transferred=False, completed=0),
        ],
        seconds=90.0,
    )
    text = format_summary(summary)
    assert "Dry run" not in text
    assert "Transfer statistics:" in text
    assert "  Successfully transferred: 1/3 series (90 images)" in text
    assert "  Failed: 2 series" in text
    assert "  Total time: 1.5 minutes (90.0 s)" in text
    assert "  Transfer rate: 60.0 images/minute" in text


def test_missing_study_count():
    remote_rows = [
        remote("absent_moved", 2, hour=11),
        remote("absent_no_series", 2, hour=10),
        remote("check_moved", 6, hour=9),
        remote("check_nothing_to_move", 6, hour=8),
        remote("complete", 2, hour=7),
        remote("old_absent", 2, inside=False),
    ]
    local_rows = [local("check_moved", 2), local("check_nothing_to_move", 5), local("complete", 2)]
    classified = classify(remote_rows, local_rows)
    plan = build_plan(
        classified,
        series_frame(
            [
                series("absent_moved", "a", 2, 1),
                series("check_moved", "c1", 4, 1),
                series("check_nothing_to_move", "d1", 6, 1),
            ]
        ),
        series_frame([series("check_moved", "c1", 2), series("check_nothing_to_move", "d1", 6)]),
        ALL,
    )
    assert set(moves(plan)["study_uid"]) == {"absent_moved", "check_moved"}
    # Absent in the window (moved or not) plus studies with a series to move.
    assert missing_study_count(classified, plan) == 3


def test_same_image_count_but_other_series_count_is_checked():
    studies = study_frame(
        [
            {"study_uid": "same", "study_date": "20250101", "images": 10, "series_count": 2},
            {"study_uid": "other", "study_date": "20250101", "images": 10, "series_count": 2},
        ]
    ).assign(in_window=True, window_note="")
    local = study_frame(
        [
            {"study_uid": "same", "images": 10, "series_count": 2},
            {"study_uid": "other", "images": 10, "series_count": 3},
        ]
    )
    status = classify_studies(studies, local).set_index("study_uid")["status"].to_dict()
    assert status == {"same": COMPLETE, "other": CHECK}


def test_failure_streaks_carry_on_from_the_previous_run():
    from dicom_sync_dagster.core.failures import failure_streaks

    previous = {"a": (4, "2025-01-01T00:00:00+00:00"), "gone": (2, "2025-01-01T00:05:00+00:00")}
    now = "2025-01-01T00:10:00+00:00"
    assert failure_streaks(previous, {"a", "b"}, now) == {
        "a": (5, "2025-01-01T00:00:00+00:00"),
        "b": (1, now),
    }
    assert failure_streaks({}, set(), now) == {}


def test_summary_line_agrees_with_the_rate_figure_it_stands_above():
    # 7 images in 0.150997 s is 2,781.47 images/min: the figure reads 2,781.5 and the line
    # must round that same figure (2,782), not the unrounded one (2,781).
    from dicom_sync_dagster.orchestration.ops import summary_line

    summary = CycleSummary("all", False, "", "", 0, 0, 0, 0, 2, 2, 0, 7, 7 * 60 / 2781.47)
    assert summary.as_dict()["images_per_minute"] == 2781.5
    assert summary_line(summary) == "2/2 series, 7 images, 2,782 images/min; 0 failed"
