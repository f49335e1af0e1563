"""dicom-sync-dagster: keep a local PACS in step with a remote PACS, run by Dagster."""

__version__ = "0.1.0"
