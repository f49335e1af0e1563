"""The DICOM layer against real servers: echo, find, move, and how each failure is named."""

from __future__ import annotations

import threading
import time

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from dicom_sync_dagster.dicom import (
    AssociationAborted,
    AssociationRejected,
    DicomNode,
    DimseTimeout,
    MoveOutcome,
    NodeUnreachable,
    Timeouts,
    open_session,
    queries,
)
from dicom_sync_dagster.sandbox import free_port
from dicom_sync_dagster.synthetic import SyntheticStudy

from .conftest import CALLING_AE

pytestmark = pytest.mark.usefixtures("both_paths")  # raw and public path

pytestmark = pytest.mark.servers


def test_echo_find_and_move_against_orthanc(site):
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [3, 4], accession="ACC-1"))
    progress = []

    with open_session(site.remote.node, CALLING_AE) as session:
        assert session.echo() == 0
        studies = session.find(queries.studies_by_date("19000101-29991231"))
        series = session.find(queries.series_of_study(study.study_uid))
        result = session.move(
            study.study_uid, study.series_uids[1], "LOCALPACS", lambda *c: progress.append(c)
        )

    assert [queries.study_row(ds)["images"] for ds in studies] == [7]
    assert queries.study_row(studies[0])["accession"] == "ACC-1"
    assert sorted(queries.series_row(ds)["images"] for ds in series) == [3, 4]
    assert result.outcome is MoveOutcome.SUCCESS
    assert (result.completed, result.failed, result.warning, result.remaining) == (4, 0, 0, 0)
    assert progress and progress[-1][3] < 4  # pending responses counted down
    assert site.local.series_instances(study.series_uids[1]) == 4


def test_move_to_an_unknown_destination_is_a_failure_with_its_status(dcmqrscp_site):
    site = dcmqrscp_site
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [2]))

    with open_session(site.remote.node, CALLING_AE) as session:
        result = session.move(study.study_uid, study.series_uids[0], "NOWHERE")
        assert session.assoc.is_established  # a failure status does not end the association

    assert result.outcome is MoveOutcome.FAILURE
    assert result.status == 0xA801
    assert "0xA801" in result.message and "destination unknown" in result.message.lower()


def test_wrong_called_ae_is_a_rejection_naming_both_titles(site):
    node = DicomNode("remote", "NOTTHEAE", "127.0.0.1", site.remote.node.port)
    with pytest.raises(AssociationRejected) as error, open_session(node, CALLING_AE):
        pass
    message = str(error.value)
    assert f"remote PACS NOTTHEAE@127.0.0.1:{node.port}" in message
    assert "'NOTTHEAE'" in message and f"'{CALLING_AE}'" in message


def test_a_calling_ae_the_peer_does_not_know_is_named(site):
    with pytest.raises(AssociationAborted) as error:
        with open_session(site.remote.node, "STRANGER") as session:
            session.find(queries.studies_by_date("19000101-29991231"))
    assert "STRANGER" in str(error.value)


def test_nobody_listening_fails_fast(closed_node):
    started = time.monotonic()
    with pytest.raises(NodeUnreachable, match="cannot connect"):
        with open_session(closed_node, CALLING_AE, Timeouts(connect=5)):
            pass
    assert time.monotonic() - started < 3


def test_an_unresolvable_host_is_named():
    node = DicomNode("local", "PACS", "pacs.invalid", 104)
    with pytest.raises(NodeUnreachable, match=r"cannot resolve host 'pacs\.invalid'"):
        with open_session(node, CALLING_AE):
            pass


@pytest.fixture
def stalling_scp():
    """A scripted pynetdicom SCP that accepts C-FIND and never answers: no real server
    stalls on demand. It is released when the test ends."""
    release = threading.Event()

    def handle_find(event):
        release.wait(30)
        yield 0x0000, None

    ae = AE(ae_title="STALL")
    ae.add_supported_context(Verification)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, handle_find)]
    )
    yield DicomNode("remote", "STALL", "127.0.0.1", port)
    release.set()
    server.shutdown()


def test_a_peer_that_stops_answering_hits_the_dimse_timeout(stalling_scp):
    started = time.monotonic()
    with pytest.raises(DimseTimeout, match="DIMSE timeout of 1s") as error:
        with open_session(stalling_scp, CALLING_AE, Timeouts(dimse=1)) as session:
            session.find(queries.studies_by_date("19000101-29991231"))
    assert 0.9 < time.monotonic() - started < 5
    assert error.value.node == stalling_scp


def test_a_reused_association_answers_every_request_in_full(site):
    """pynetdicom issue #875: on a reused association its reactor thread could take a
    response meant for the next request. The responses go to a queue of the session's own."""
    study = site.add_remote(SyntheticStudy(site.ago(hours=1), [1, 1]))
    with open_session(site.remote.node, CALLING_AE) as session:
        short = [
            n
            for n in (
                len(session.find(queries.series_of_study(study.study_uid))) for _ in range(1500)
            )
            if n != 2
        ]
    assert short == []
