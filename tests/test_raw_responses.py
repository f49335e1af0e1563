"""The session's own reading of C-FIND responses against answers no real server sends on demand
(a raw-socket peer, tests/raw_peer.py): nothing hangs, nothing of one request reaches the next,
and an invalid answer aborts the association with an error."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from pynetdicom import fsm

from dicom_sync_dagster.dicom import (
    DicomError,
    DicomNode,
    Timeouts,
    dimse_path,
    open_session,
    queries,
)

from .raw_peer import RawPeer, Request, answers, find_rsp, identifier, pdata, pdv

GUARD_SECONDS = 20  # a test that takes longer has hung


def run_finds(peer: RawPeer, requests: int = 3) -> list[object]:
    """``requests`` C-FINDs on one association, in a thread that must not hang: per request
    the number of matches or the error's class name."""
    out: list[object] = []

    def run() -> None:
        node = DicomNode("remote", "RAW", "127.0.0.1", peer.port)
        with open_session(node, "SCU", Timeouts(dimse=3)) as session:
            for _ in range(requests):
                try:
                    out.append(len(session.find(queries.studies_by_date("20260101-20261231"))))
                except DicomError as exc:
                    out.append(type(exc).__name__)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_SECONDS)
    assert not thread.is_alive(), f"hung after {out}"
    peer.close()
    return out


def first_differs(first):
    """A script: request 1 as ``first`` says, every later one two answers and a success."""

    def script(peer: RawPeer, conn, request: Request) -> None:
        if request.number == 1:
            first(conn, request)
        else:
            conn.sendall(answers(request, 2))

    return RawPeer(script)


@pytest.mark.usefixtures("raw_path_only")
def test_a_response_after_the_final_one_is_dropped_and_hangs_nothing():
    def final_then_more(conn, request: Request) -> None:
        context, message_id = request.context_id, request.message_id
        conn.sendall(
            pdata(
                pdv(context, 3, find_rsp(0xFF00, message_id)),
                pdv(context, 2, identifier("1.2.0")),
                pdv(context, 3, find_rsp(0x0000, message_id, has_data=False)),
                pdv(context, 3, find_rsp(0xFF00, message_id)),  # after the final response
                pdv(context, 2, identifier("1.2.9")),
            )
        )

    assert run_finds(first_differs(final_then_more)) == [1, 2, 2]


@pytest.mark.usefixtures("raw_path_only")
def test_a_late_answer_to_an_earlier_request_is_not_counted_in_the_next():
    def late_answer(conn, request: Request) -> None:
        conn.sendall(answers(request, 1))
        time.sleep(0.2)  # the next request has been sent by now
        stale = pdata(
            pdv(request.context_id, 3, find_rsp(0xFF00, request.message_id)),
            pdv(request.context_id, 2, identifier("1.2.8")),
        )
        conn.sendall(stale)

    def script(peer: RawPeer, conn, request: Request) -> None:
        if request.number == 1:
            threading.Thread(target=late_answer, args=(conn, request), daemon=True).start()
        else:
            time.sleep(0.4)  # the stale answer arrives first
            conn.sendall(answers(request, 2))

    assert run_finds(RawPeer(script)) == [1, 2, 2]


@pytest.mark.usefixtures("both_paths")
def test_an_invalid_response_aborts_with_an_error_and_nothing_hangs(caplog):
    def wrong_type(conn, request: Request) -> None:  # a C-MOVE-RSP to a C-FIND
        rsp = find_rsp(0x0000, request.message_id, has_data=False, field=0x8021)
        conn.sendall(pdata(pdv(request.context_id, 3, rsp)))

    with caplog.at_level(logging.ERROR):
        started = time.monotonic()
        out = run_finds(first_differs(wrong_type))

    assert out[0] == "AssociationAborted"
    assert time.monotonic() - started < 3  # not a DIMSE timeout
    assert "an invalid or unfinished response; aborting" in caplog.text


@pytest.mark.usefixtures("both_paths")
def test_a_connection_closed_mid_answer_fails_fast():
    def close_mid(conn, request: Request) -> None:
        conn.sendall(
            pdata(
                pdv(request.context_id, 3, find_rsp(0xFF00, request.message_id)),
                pdv(request.context_id, 2, identifier("1.2.1")),
            )
        )
        conn.shutdown(2)

    started = time.monotonic()
    out = run_finds(first_differs(close_mid), requests=1)

    assert out == ["AssociationAborted"]
    assert time.monotonic() - started < 2.5


@pytest.mark.usefixtures("raw_path_only")
def test_the_raw_path_passes_its_start_up_check_and_reads_a_real_servers_responses(site):
    """The check is a real exchange with pynetdicom's own SCP (not ``hasattr``); against
    Orthanc the responses then take the raw path, none pynetdicom's own."""
    assert dimse_path.probe(again=True) == ""
    with open_session(site.remote.node, "DICOMSYNC") as session:
        assert session.path == "raw"
        dimse = type(session.assoc.dimse)
        calls = []
        original = dimse.receive_primitive
        dimse.receive_primitive = lambda self, p: calls.append(p) or original(self, p)
        try:
            assert session.find(queries.studies_by_date("20000101-20000101")) == []
        finally:
            dimse.receive_primitive = original
        assert calls == []


def _bypassing_dt2(dul) -> str:
    """pynetdicom's P-DATA action as a changed pynetdicom might have it: calling the DIMSE
    class's method, not the instance attribute the raw path sets."""
    pdu = dul._recv_pdu.get(False)
    dimse = dul.assoc.dimse
    type(dimse).receive_primitive(dimse, pdu.to_primitive())
    return "Sta6"


def test_a_pynetdicom_the_raw_path_no_longer_fits_is_found_at_start_up_and_the_public_path_used(
    site, monkeypatch, caplog
):
    """Before: the raw path was used anyway and every C-FIND hung until its DIMSE timeout."""
    description, _, state = fsm.ACTIONS["DT-2"]
    monkeypatch.setitem(fsm.ACTIONS, "DT-2", (description, _bypassing_dt2, state))
    monkeypatch.setattr(dimse_path, "PROBE_SECONDS", 2.0)
    monkeypatch.setattr(dimse_path, "_probe_problem", None)
    monkeypatch.setattr(dimse_path, "_logged", set())
    monkeypatch.delenv("DICOM_SYNC_DIMSE_PATH", raising=False)

    with caplog.at_level(logging.INFO, logger="dicom_sync_dagster.dicom.dimse_path"):
        for _ in range(2):
            with open_session(site.remote.node, "DICOMSYNC", Timeouts(dimse=30)) as session:
                assert session.path == "public"
                assert session.find(queries.studies_by_date("20000101-20000101")) == []
    said = [r for r in caplog.records if r.name.endswith("dimse_path")]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert "the raw path failed its check" in said[0].getMessage()

    monkeypatch.setenv("DICOM_SYNC_DIMSE_PATH", "raw")
    with pytest.raises(dimse_path.DimsePathError, match="DICOM_SYNC_DIMSE_PATH=raw"):
        open_session(site.remote.node, "DICOMSYNC").__enter__()


def test_an_unknown_dimse_path_is_named_before_any_traffic(closed_node, monkeypatch):
    monkeypatch.setenv("DICOM_SYNC_DIMSE_PATH", "fast")
    with pytest.raises(dimse_path.DimsePathError, match="DICOM_SYNC_DIMSE_PATH='fast'"):
        open_session(closed_node, "DICOMSYNC").__enter__()  # not NodeUnreachable: no traffic
