"""The tables of the sync job's metadata: their columns and how a frame becomes one."""

from __future__ import annotations

import pandas as pd
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

TABLE_ROWS = 500  # rows of a metadata table; the counts always cover everything

# What a user reads first: which series, how it ended and why; the long study UID last.
REPORT_COLUMNS = [
    ("accession", "string"),
    ("modality", "string"),
    ("series_number", "int"),
    ("outcome", "string"),
    ("error", "string"),
    ("series_description", "string"),
    ("images", "int"),
    ("seconds", "float"),
    ("attempts", "int"),
    ("study_uid", "string"),
]
PLAN_TABLE_COLUMNS = [
    ("study_uid", "string"),
    ("accession", "string"),
    ("modality", "string"),
    ("series_number", "int"),
    ("series_description", "string"),
    ("remote_images", "int"),
    ("local_images", "int"),
    ("action", "string"),
    ("reason", "string"),
    ("note", "string"),
]
FAILURE_COLUMNS = [
    *REPORT_COLUMNS,
    ("failing_runs", "int"),
    ("failing_since", "string"),
    ("series_uid", "string"),
]


def table(frame: pd.DataFrame, columns: list[tuple[str, str]]) -> MetadataValue:
    """The first TABLE_ROWS rows of ``frame`` as a metadata table of ``columns``."""
    records = []
    for row in frame.head(TABLE_ROWS).to_dict("records"):
        records.append(
            TableRecord({name: (None if pd.isna(row[name]) else row[name]) for name, _ in columns})
        )
    schema = TableSchema(columns=[TableColumn(name, kind) for name, kind in columns])
    return MetadataValue.table(records, schema=schema)
