"""Pure sync logic: no network, no Dagster. Everything here is a function of its inputs."""
