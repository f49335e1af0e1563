"""The tool only echoes, finds and moves: watched on the wire during a full sync cycle and a
connection check against two real Orthanc servers.

A recording relay (tests/support/dimse_tap.py) stands in front of each Orthanc and decodes every
PDU the tool sends; the servers answer as they would without it. The C-STOREs the remote sends
for a C-MOVE go from Orthanc to Orthanc, not through the relay: the relay sees only the tool.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicom_sync_dagster.definitions import defs
from dicom_sync_dagster.synthetic import SyntheticStudy

from .conftest import Site
from .helpers import moved_series, run_sync, site_resources
from .support.dimse_tap import DimseTap

pytestmark = pytest.mark.servers

# What the tool may propose, to either node (proposing is not using: the local gets no move).
ASKS = {
    Verification,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
}
SENDS = {"C-ECHO-RQ", "C-FIND-RQ", "C-CANCEL-RQ"}  # C-CANCEL-RQ: only to stop a C-FIND/C-MOVE
SENDS_REMOTE = SENDS | {"C-MOVE-RQ"}


def test_a_sync_cycle_and_a_check_only_echo_find_and_move_on_the_wire(site):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 3, 4], accession="WIRE-1"))
    site.add_local(study, series=[0])  # series 1 missing
    site.add_local(study, series=[2], images=2)  # series 2: 2 of its 4 images
    missing = {study.series_uids[1], study.series_uids[2]}

    with DimseTap(site.remote.node) as remote, DimseTap(site.local.node) as local:
        nodes = SimpleNamespace(node=remote.node), SimpleNamespace(node=local.node)
        tapped = Site(*nodes, site.reference)  # the tool talks to the taps
        result = run_sync(tapped, mode="all")
        check = (
            defs()
            .resolve_job_def("check_connections")
            .execute_in_process(resources=site_resources(tapped.env()), raise_on_error=False)
        )

    assert result.success and check.success
    assert moved_series(result) == missing
    for uid, size in zip(study.series_uids, study.series_sizes, strict=True):
        assert site.local.series_instances(uid) == size

    for tap, sends in ((remote, SENDS_REMOTE), (local, SENDS)):
        assert tap.errors == []
        assert tap.associations, "the tool never connected"
        for association in tap.associations:
            assert set(association.proposed) <= ASKS, association.proposed
            assert association.ended_by == "A-RELEASE-RQ", association
        assert set(tap.names()) <= sends, tap.names()
        assert {"C-ECHO-RQ", "C-FIND-RQ"} <= set(tap.names())

    # The moves: from the remote to the local AE, the missing series whole, the partial one
    # image by image (only the two images the local lacked).
    moves = [m.data_set for m in remote.messages if m.name == "C-MOVE-RQ"]
    destinations = {m.command.MoveDestination for m in remote.messages if m.name == "C-MOVE-RQ"}
    assert destinations == {site.local.node.ae_title}
    assert {(m.QueryRetrieveLevel, m.SeriesInstanceUID) for m in moves} == {
        ("SERIES", study.series_uids[1]),
        ("IMAGE", study.series_uids[2]),
    }
    lacking = {ds.SOPInstanceUID for ds in study.datasets([2])[2:]}
    [by_image] = [m for m in moves if m.QueryRetrieveLevel == "IMAGE"]
    assert set(by_image["SOPInstanceUID"].value) == lacking
