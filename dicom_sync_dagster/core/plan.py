"""The diff: which windowed studies need a look, and the plan with a reason for every series."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .selection import Selection

MOVE = "move"
SKIP = "skip"

ABSENT = "absent"  # the local PACS does not have the study
COMPLETE = "complete"  # the local PACS has at least as many images of it
CHECK = "check"  # present on both, counts differ or are unknown: compare series
SETTLED = "settled"  # a look at its series found nothing to move, and its counts are unchanged

REASON_MISSING = "selected: not on local"
REASON_INCOMPLETE = "selected: local has fewer images"
REASON_COMPLETE = "complete on local"
REASON_STUDY_COMPLETE = "study complete on local"
REASON_OUTSIDE = "outside the window"
REASON_EMPTY = "no images on remote"
REASON_NO_SERIES = "remote listed no series"
REASON_SETTLED = "nothing to move at the last look; counts unchanged"

PLAN_COLUMNS = [
    "study_uid",
    "accession",
    "study_datetime",
    "series_uid",
    "modality",
    "series_number",
    "series_description",
    "remote_images",
    "local_images",
    "action",
    "reason",
    "note",
]


def classify_studies(windowed: pd.DataFrame, local: pd.DataFrame) -> pd.DataFrame:
    """Windowed remote studies with ``local_images`` and ``status`` (absent/complete/check).

    Local studies are matched by StudyInstanceUID only, so a local copy with another
    StudyDate/Time is still found. A study counts as complete without a look at its series
    only when both PACS give the same image count (and the same series count, where both
    give one): a local copy with more images may hold objects made locally (reports,
    presentation states) and still lack a series.
    """
    local_counts = local.drop_duplicates("study_uid").set_index("study_uid")
    out = windowed.copy()
    present = out["study_uid"].isin(local_counts.index)
    out["local_images"] = out["study_uid"].map(local_counts["images"]).astype("Int64")
    local_series = out["study_uid"].map(local_counts["series_count"]).astype("Int64")
    same_images = (out["local_images"] == out["images"]).fillna(False).astype(bool)
    series_differ = (local_series != out["series_count"]).fillna(False).astype(bool)
    out["status"] = CHECK
    out.loc[~present, "status"] = ABSENT
    out.loc[present & same_images & ~series_differ, "status"] = COMPLETE
    return out


def mark_settled(classified: pd.DataFrame, settled: Mapping[str, tuple[int, int]]) -> pd.DataFrame:
    """Studies to check whose (remote, local) image counts are those with which an earlier
    look at their series found nothing to move (e.g. in mode smallest, once the smallest
    series arrived, local < remote for good): no need to list their series again."""
    out = classified.copy()
    counts = list(zip(out["images"], out["local_images"], strict=True))
    same = [
        uid in settled
        and not (pd.isna(r) or pd.isna(lo))
        and (int(r), int(lo)) == tuple(settled[uid])
        for uid, (r, lo) in zip(out["study_uid"], counts, strict=True)
    ]
    out.loc[(out["status"] == CHECK) & pd.Series(same, index=out.index), "status"] = SETTLED
    return out


def settled_after(classified: pd.DataFrame, plan: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Windowed studies, present on both with known counts, for which nothing is to move."""
    moving = set(plan.loc[plan["action"] == MOVE, "study_uid"])
    rows = classified[
        classified["in_window"]
        & classified["status"].isin([CHECK, SETTLED])
        & classified["images"].notna()
        & classified["local_images"].notna()
        & ~classified["study_uid"].isin(moving)
    ]
    return {
        uid: (int(r), int(lo))
        for uid, r, lo in zip(rows["study_uid"], rows["images"], rows["local_images"], strict=True)
    }


def needs_series_query(classified: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Study UIDs whose remote series must be listed, and those whose local series too."""
    in_window = classified[classified["in_window"]]
    remote = in_window.loc[~in_window["status"].isin([COMPLETE, SETTLED]), "study_uid"].tolist()
    local = in_window.loc[in_window["status"] == CHECK, "study_uid"].tolist()
    return remote, local


def _study_rows(studies: pd.DataFrame, reason: str) -> pd.DataFrame:
    """One row for a whole study that needs no series-level look."""
    return pd.DataFrame(
        {
            "study_uid": studies["study_uid"],
            "remote_images": studies["images"],
            "local_images": studies["local_images"],
            "action": SKIP,
            "reason": reason,
        }
    )


def _series_rows(
    series: pd.DataFrame, local_series: pd.DataFrame, selection: Selection
) -> pd.DataFrame:
    """Each remote series with its local count, decision and reason."""
    local_counts = local_series.set_index(["study_uid", "series_uid"])["images"]
    keys = pd.MultiIndex.from_frame(series[["study_uid", "series_uid"]])
    local_images = pd.Series(local_counts.reindex(keys).to_numpy(), index=series.index)
    local_images = local_images.fillna(0).astype("Int64")
    images = series["images"]
    complete = (local_images >= images).fillna(False).astype(bool)
    empty = (images == 0).fillna(False).astype(bool)
    wanted, why_not = selection.wanted(series)
    move = wanted & ~complete & ~empty

    reason = why_not.copy()
    reason[wanted & complete] = REASON_COMPLETE
    reason[wanted & empty] = REASON_EMPTY
    reason[move & (local_images == 0)] = REASON_MISSING
    reason[move & (local_images > 0)] = REASON_INCOMPLETE
    return pd.DataFrame(
        {
            "study_uid": series["study_uid"],
            "series_uid": series["series_uid"],
            "modality": series["modality"],
            "series_number": series["series_number"],
            "series_description": series["description"],
            "remote_images": images,
            "local_images": local_images,
            "action": move.map({True: MOVE, False: SKIP}),
            "reason": reason,
        }
    )


def build_plan(
    classified: pd.DataFrame,
    remote_series: pd.DataFrame,
    local_series: pd.DataFrame,
    selection: Selection,
) -> pd.DataFrame:
    """One row per series of each windowed study that needed a look; one row per other study.

    Every mode moves only series that are not complete on the local PACS: a study partly
    there gets completed, and a series that failed last time is picked again.
    """
    in_window = classified["in_window"]
    examined = needs_series_query(classified)[0]
    series = remote_series[remote_series["study_uid"].isin(examined)]
    listed = set(series["study_uid"])
    parts = [
        _series_rows(series, local_series, selection),
        _study_rows(classified[~in_window], REASON_OUTSIDE),
        _study_rows(
            classified[in_window & (classified["status"] == COMPLETE)], REASON_STUDY_COMPLETE
        ),
        _study_rows(classified[in_window & (classified["status"] == SETTLED)], REASON_SETTLED),
        _study_rows(
            classified[classified["study_uid"].isin(set(examined) - listed)], REASON_NO_SERIES
        ),
    ]
    parts = [p for p in parts if not p.empty] or [pd.DataFrame(columns=PLAN_COLUMNS)]
    plan = pd.concat(parts, ignore_index=True)
    plan = plan.reindex(columns=PLAN_COLUMNS)
    study_info = classified.set_index("study_uid")
    per_study = study_info.reindex(plan["study_uid"])
    plan["accession"] = per_study["accession"].fillna("").astype(str).to_numpy()
    plan["study_datetime"] = pd.to_datetime(per_study["study_datetime"], utc=True).to_numpy()
    plan["note"] = per_study["window_note"].fillna("").astype(str).to_numpy()
    for column in ("series_uid", "modality", "series_description", "action", "reason"):
        plan[column] = plan[column].astype(object).where(plan[column].notna(), "").astype(str)
    for column in ("series_number", "remote_images", "local_images"):
        plan[column] = pd.to_numeric(plan[column]).astype("Int64")
    return plan.sort_values(
        ["action", "study_datetime", "study_uid", "series_number"],
        ascending=[True, False, True, True],
        na_position="last",
        kind="stable",
    ).reset_index(drop=True)


def moves(plan: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``plan`` to move."""
    return plan[plan["action"] == MOVE].reset_index(drop=True)
