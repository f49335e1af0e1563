"""What tests and benchmarks share: `dagster dev` and GraphQL (dagster_dev.py), a recorder of
the DIMSE requests on the wire (dimse_tap.py). Importable without pytest: benchmarks/ puts the
repository on sys.path and imports ``tests.support``."""
