"""The two PACS nodes and the tool's own options as Dagster resources.

Values are kept as text and validated by :mod:`dicom_sync_dagster.settings`, so a bad value
stops the run with an error naming the environment variable and the value.
"""

import os

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from ..dicom.node import DicomNode, Timeouts
from ..settings import (
    CALLING_AE,
    DEFAULT_CALLING_AE,
    MOVE_DESTINATION,
    NODE_VARIABLES,
    TIMEZONE,
    SyncSettings,
    node_from_values,
    settings_from_values,
)


class DicomNodeResource(ConfigurableResource):
    """A DICOM Query/Retrieve SCP: the remote PACS (the source) or the local PACS."""

    role: str = Field(description="'remote' or 'local'; names the node in messages.")
    ae_title: str = Field(default="", description="Called AE title of the node.")
    host: str = Field(default="", description="Host name or IP address.")
    port: str = Field(default="", description="DICOM port, 1-65535.")

    def node(self) -> DicomNode:
        return node_from_values(self.role, self.ae_title, self.host, self.port)


class SyncOptionsResource(ConfigurableResource):
    """How this tool talks to both nodes."""

    calling_ae: str = Field(
        default=DEFAULT_CALLING_AE, description="AE title this tool uses as SCU."
    )
    move_destination: str = Field(
        default="", description="AE title the remote sends C-MOVEs to; empty: the local AE title."
    )
    timezone: str = Field(
        default="", description="IANA zone of StudyDate/StudyTime; empty: this machine's zone."
    )
    connect_timeout: float = Field(default=5.0, description="Seconds to open a TCP connection.")
    acse_timeout: float = Field(default=15.0, description="Seconds for association set-up/release.")
    dimse_timeout: float = Field(default=120.0, description="Seconds to wait for one response.")
    network_timeout: float = Field(default=300.0, description="Seconds an association may idle.")
    max_parallel_moves: int = Field(
        default=2, description="C-MOVEs at once, each on its own association (1-32)."
    )

    def settings(self, remote: DicomNodeResource, local: DicomNodeResource) -> SyncSettings:
        return settings_from_values(
            remote=(remote.ae_title, remote.host, remote.port),
            local=(local.ae_title, local.host, local.port),
            calling_ae=self.calling_ae,
            move_destination=self.move_destination,
            timezone=self.timezone,
            timeouts=Timeouts(
                self.connect_timeout, self.acse_timeout, self.dimse_timeout, self.network_timeout
            ),
            max_parallel_moves=self.max_parallel_moves,
        )


def _env_or(name: str, default: str = "") -> str | EnvVar:
    """``EnvVar(name)`` when it is set (so the UI shows where the value comes from)."""
    return EnvVar(name) if os.environ.get(name) else default


def node_resource_from_env(role: str) -> DicomNodeResource:
    ae_var, host_var, port_var = NODE_VARIABLES[role]
    return DicomNodeResource(
        role=role, ae_title=_env_or(ae_var), host=_env_or(host_var), port=_env_or(port_var)
    )


def options_resource_from_env() -> SyncOptionsResource:
    return SyncOptionsResource(
        calling_ae=_env_or(CALLING_AE, DEFAULT_CALLING_AE),
        move_destination=_env_or(MOVE_DESTINATION),
        timezone=_env_or(TIMEZONE),
    )
