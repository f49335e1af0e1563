"""The Dagster layer: resources, run config, ops, the job and its schedule. Thin by design."""
