"""Exit codes of `dicom-sync` (sites script against them: add, never renumber)."""

EXIT_OK = 0  # done; every planned series complete on the local PACS
EXIT_FAILED = 1  # a run failed: a node unreachable or refusing, a series not transferred
EXIT_CONFIG = 2  # a configuration error, found before any network traffic
EXIT_BUSY = 3  # skipped: a run of the route was still going
EXIT_INTERRUPTED = 130  # Ctrl+C, as shells report SIGINT
