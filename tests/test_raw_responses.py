"""The session's own reading of C-FIND responses against answers no real server sends on demand
(a raw-socket peer, tests/raw_peer.py): nothing hangs, nothing of one request reaches the next,
and an invalid answer aborts the association with an error."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from dicom_sync_dagster.dicom import DicomError, DicomNode, Timeouts, open_session, queries

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


@pytest.mark.parametrize("field", ["_reactor_checkpoint", "_is_paused", "_handle_no_response"])
def test_the_private_pynetdicom_attributes_the_session_relies_on_exist(site, field):
    """pynetdicom is pinned to 3.0.x: these internals are what session.py's response path and
    its polling change use; an upgrade that drops one must fail here, not in production."""
    with open_session(site.remote.node, "DICOMSYNC") as session:
        assoc = session.assoc
        assert hasattr(assoc, field)
        assert hasattr(assoc.dul, "_run_loop_delay") and hasattr(assoc.dimse, "dimse_timeout")
        calls = []
        original = type(assoc.dimse).receive_primitive
        type(assoc.dimse).receive_primitive = lambda self, p: calls.append(p) or original(self, p)
        try:
            assert session.find(queries.studies_by_date("20000101-20000101")) == []
        finally:
            type(assoc.dimse).receive_primitive = original
        assert calls == []  # the C-FIND's responses took the session's own path
