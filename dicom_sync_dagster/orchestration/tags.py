"""The run tags this code location sets and reads, in one place."""

CONCURRENCY_TAG = "dicom-sync/job"  # dagster.yaml allows one queued run per value at a time
ROUTE_TAG = "dicom-sync/route"
REFERENCE_TAG = "dicom-sync/reference-time"  # ISO 8601, on runs that examined the remote
OUTCOME_TAG = "dicom-sync/outcome"  # idle | moved | failed, on runs that reached their report
OUTCOMES = ["idle", "moved", "failed"]
CAUSE_TAG = "dicom-sync/cause"  # on failed runs: a few words, e.g. "remote unreachable"
MODE_TAG = "dicom-sync/mode"  # smallest | fewer_than | all, on every sync run past its config
CHECK_TAG = "dicom-sync/check"  # on a route check's verdict: why it asked for a run
