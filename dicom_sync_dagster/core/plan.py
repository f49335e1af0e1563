"""The diff: which windowed studies need a look, and the plan with a reason for every series."""

from __future__ import annotations

import pandas as pd

from .selection import Selection

MOVE = "move"
SKIP = "skip"

ABSENT = "absent"  # the local PACS does not have the study
COMPLETE = "complete"  # the local PACS has at least as many images of it
CHECK = "check"  # present on both, counts differ or are unknown: compare series

REASON_MISSING = "selected: not on local"
REASON_INCOMPLETE = "selected: local has fewer images"
REASON_COMPLETE = "complete on local"
REASON_STUDY_COMPLETE = "study complete on local"
REASON_OUTSIDE = "outside the window"
REASON_EMPTY = "no images on remote"
REASON_NO_SERIES = "remote listed no series"

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
    StudyDate/Time is still found. A study is complete only when both counts are known.
    """
    local_counts = local.drop_duplicates("study_uid").set_index("study_uid")["images"]
    out = windowed.copy()
    present = out["study_uid"].isin(local_counts.index)
    out["local_images"] = out["study_uid"].map(local_counts).astype("Int64")
    complete = present & (out["images"].notna() & out["local_images"].notna())
    complete &= (out["local_images"] >= out["images"]).fillna(False).astype(bool)
    out["status"] = CHECK
    out.loc[~present, "status"] = ABSENT
    out.loc[complete, "status"] = COMPLETE
    return out


def needs_series_query(classified: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Study UIDs whose remote series must be listed, and those whose local series too."""
    in_window = classified[classified["in_window"]]
    remote = in_window.loc[in_window["status"] != COMPLETE, "study_uid"].tolist()
    local = in_window.loc[in_window["status"] == CHECK, "study_uid"].tolist()
    return remote, local


def build_plan(
    classified: pd.DataFrame,
    remote_series: pd.DataFrame,
    local_series: pd.DataFrame,
    selection: Selection,
) -> pd.DataFrame:
    """One row per series of each windowed study (one per study where no series were listed).

    Every mode moves only series that are not complete on the local PACS: a study partly
    there gets completed, and a series that failed last time is picked again.
    """
    study_info = classified.set_index("study_uid")
    study_rows = []
    for status, reason in ((None, REASON_OUTSIDE), (COMPLETE, REASON_STUDY_COMPLETE)):
        chosen = (
            ~classified["in_window"]
            if status is None
            else (classified["in_window"] & (classified["status"] == status))
        )
        part = classified[chosen]
        study_rows.append(
            pd.DataFrame(
                {
                    "study_uid": part["study_uid"],
                    "remote_images": part["images"],
                    "local_images": part["local_images"],
                    "action": SKIP,
                    "reason": reason,
                }
            )
        )

    wanted_uids = set(needs_series_query(classified)[0])
    series = remote_series[remote_series["study_uid"].isin(wanted_uids)].copy()
    listed = set(series["study_uid"])
    unlisted = [uid for uid in needs_series_query(classified)[0] if uid not in listed]
    study_rows.append(
        pd.DataFrame({"study_uid": unlisted, "action": SKIP, "reason": REASON_NO_SERIES})
    )

    local_counts = local_series.set_index(["study_uid", "series_uid"])["images"]
    keys = pd.MultiIndex.from_frame(series[["study_uid", "series_uid"]])
    local_images = pd.Series(local_counts.reindex(keys).to_numpy(), index=series.index)
    series["local_images"] = local_images.fillna(0).astype("Int64")
    complete = (series["local_images"] >= series["images"]).fillna(False).astype(bool)
    wanted, why_not = selection.wanted(series)
    empty = (series["images"] == 0).fillna(False).astype(bool)
    move = wanted & ~complete & ~empty
    partial = series["local_images"] > 0

    reason = why_not.copy()
    reason[wanted & complete] = REASON_COMPLETE
    reason[wanted & empty] = REASON_EMPTY
    reason[move & ~partial] = REASON_MISSING
    reason[move & partial] = REASON_INCOMPLETE
    series_rows = pd.DataFrame(
        {
            "study_uid": series["study_uid"],
            "series_uid": series["series_uid"],
            "modality": series["modality"],
            "series_number": series["series_number"],
            "series_description": series["description"],
            "remote_images": series["images"],
            "local_images": series["local_images"],
            "action": move.map({True: MOVE, False: SKIP}),
            "reason": reason,
        }
    )

    plan = pd.concat([series_rows, *study_rows], ignore_index=True)
    plan["accession"] = plan["study_uid"].map(study_info["accession"]).fillna("")
    plan["study_datetime"] = plan["study_uid"].map(study_info["study_datetime"])
    plan["note"] = plan["study_uid"].map(study_info["window_note"]).fillna("")
    for column in ("series_uid", "modality", "series_description"):
        plan[column] = plan[column].fillna("")
    for column in ("series_number", "remote_images", "local_images"):
        plan[column] = plan[column].astype("Int64")
    plan = plan[PLAN_COLUMNS]
    return plan.sort_values(
        ["action", "study_datetime", "study_uid", "series_number"],
        ascending=[True, False, True, True],
        na_position="last",
        kind="stable",
    ).reset_index(drop=True)


def moves(plan: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``plan`` to move."""
    return plan[plan["action"] == MOVE].reset_index(drop=True)
