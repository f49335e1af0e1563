"""A broken or hostile remote cannot stall the session (issue 14), played by the raw-socket
peer (tests/raw_peer.py): no real server sends endless pending responses, a flood of answers
or a malformed command set on demand."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import date

import pytest

from dicom_sync_dagster.cycle import find_studies_split
from dicom_sync_dagster.dicom import (
    AssociationAborted,
    DicomError,
    DicomNode,
    DimseTimeout,
    MoveOutcome,
    QueryTruncated,
    Timeouts,
    open_session,
    queries,
)

from .raw_peer import (
    RawPeer,
    Request,
    answers,
    find_rsp,
    identifier,
    move_rsp,
    pdata,
    pdv,
    with_length,
)

pytestmark = pytest.mark.usefixtures("both_paths")  # raw and public path

GUARD_SECONDS = 60  # generous: a loaded machine; a hang is what these tests catch
UID_A, UID_B = "1.2.826.0.1.3680043.9.7", "1.2.826.0.1.3680043.9.8"


def in_thread(work):
    """``work()``'s result, from a thread that must end within GUARD_SECONDS."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(work())
        except DicomError as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_SECONDS)
    assert not thread.is_alive(), "the request never ended"
    return out[0]


def node(peer: RawPeer) -> DicomNode:
    return DicomNode("remote", "HOSTILE", "127.0.0.1", peer.port)


def endless(send_one, interval: float):
    """A script: for each request, ``send_one(conn, request, n)`` every ``interval`` seconds
    from a thread of its own, until the association ends."""

    def script(peer: RawPeer, conn, request: Request) -> None:
        def loop() -> None:
            n = 0
            while not peer.closed.is_set():
                try:
                    send_one(conn, request, n)
                except OSError:
                    return
                n += 1
                peer.closed.wait(interval)

        threading.Thread(target=loop, daemon=True).start()

    return script


def move(peer: RawPeer, timeouts: Timeouts, stop: threading.Event | None = None):
    def work():
        with open_session(node(peer), "SCU", timeouts, stop) as session:
            return session.move(UID_A, UID_B, "LOCALPACS")

    return in_thread(work)


def stuck_pending(conn, request: Request, n: int) -> None:
    rsp = move_rsp(
        0xFF00,
        request.message_id,
        NumberOfRemainingSuboperations=65535,
        NumberOfCompletedSuboperations=0,
        NumberOfFailedSuboperations=0,
        NumberOfWarningSuboperations=0,
    )
    conn.sendall(pdata(pdv(request.context_id, 3, rsp)))


def test_a_move_pending_for_ever_with_stuck_counts_ends_after_the_no_progress_timeout():
    """The table's first row: 'pending' every 0.2 s (faster than any DIMSE timeout), remaining
    stuck at 65535. Before: never ended."""
    peer = RawPeer(endless(stuck_pending, 0.2))
    started = time.monotonic()

    result = move(peer, Timeouts(dimse=30, move_no_progress=1.5))

    assert result.outcome is MoveOutcome.TIMEOUT
    assert "no progress for 1.5s" in result.message and "65535 remaining" in result.message
    assert time.monotonic() - started < 20  # 1.5 s + the C-CANCEL grace, not for ever
    assert peer.cancelled.is_set()  # C-CANCEL first, then the abort
    assert peer.closed.wait(10)
    peer.close()


def test_a_move_that_keeps_counting_ends_at_its_deadline():
    def counting(conn, request: Request, n: int) -> None:
        rsp = move_rsp(0xFF00, request.message_id, NumberOfCompletedSuboperations=n % 65535)
        conn.sendall(pdata(pdv(request.context_id, 3, rsp)))

    peer = RawPeer(endless(counting, 0.1))

    result = move(peer, Timeouts(dimse=30, move_no_progress=30, move_deadline=2))

    assert result.outcome is MoveOutcome.TIMEOUT
    assert "not finished within 2s (move_deadline)" in result.message
    peer.close()


def test_setting_stop_ends_a_move_in_progress_within_seconds():
    """What Ctrl+C and Dagster's terminate do to the moves of a run (transfer.transfer)."""
    peer = RawPeer(endless(stuck_pending, 0.2))
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()

    result = move(peer, Timeouts(dimse=600, move_no_progress=600), stop)

    assert result.outcome is MoveOutcome.ABORTED and "stopped" in result.message
    assert time.monotonic() - started < 1.0 + 10
    assert peer.cancelled.is_set() and peer.closed.wait(10)
    peer.close()


def find(peer: RawPeer, timeouts: Timeouts, identifier_=None):
    def work():
        with open_session(node(peer), "SCU", timeouts) as session:
            ask = identifier_ or queries.studies_by_date("20260101-20261231")
            return session.find(ask)

    return in_thread(work)


def one_answer(conn, request: Request, n: int) -> None:
    conn.sendall(
        pdata(
            pdv(request.context_id, 3, find_rsp(0xFF00, request.message_id)),
            pdv(request.context_id, 2, identifier(f"1.2.{n}")),
        )
    )


def test_a_find_pending_for_ever_ends_at_its_deadline():
    """Before: never ended, memory rising."""
    peer = RawPeer(endless(one_answer, 0.05))
    started = time.monotonic()

    error = find(peer, Timeouts(dimse=30, find_deadline=2))

    assert isinstance(error, DimseTimeout)
    assert "not finished within its deadline of 2s (find_deadline" in str(error)
    assert "remote PACS HOSTILE@127.0.0.1" in str(error)
    assert time.monotonic() - started < 20
    peer.close()


def flood_until_cancelled(peer: RawPeer, conn, request: Request) -> None:
    """Answers without end, 50 every 5 ms (10,000 a second: paced, so that what is still in the
    socket buffers when the C-CANCEL comes does not depend on how loaded the machine is); on
    C-CANCEL, a final 0xFE00 Cancel."""
    batch = b"".join(
        pdv(request.context_id, 3, find_rsp(0xFF00, request.message_id))
        + pdv(request.context_id, 2, identifier(f"1.2.{n}"))
        for n in range(50)
    )
    while not peer.cancelled.is_set():
        conn.sendall(pdata(batch))
        peer.cancelled.wait(0.005)
    conn.sendall(pdata(pdv(request.context_id, 3, find_rsp(0xFE00, request.message_id, False))))


def flooding(first_only: bool = False):
    def script(peer: RawPeer, conn, request: Request) -> None:
        if first_only and request.number > 1:
            conn.sendall(answers(request, 2))
            return
        peer.cancelled.clear()

        def run() -> None:
            with contextlib.suppress(OSError):
                flood_until_cancelled(peer, conn, request)

        threading.Thread(target=run, daemon=True).start()

    return script


def test_answers_beyond_the_cap_are_cancelled_and_the_query_named_truncated():
    """Before: 200,000 tiny answers taken, 129 s and 349 MB."""
    peer = RawPeer(flooding())

    error = find(peer, Timeouts(find_answers=500))

    assert isinstance(error, QueryTruncated)
    assert "cut off at the cap of 500 answers (max_find_answers)" in str(error)
    assert "remote PACS HOSTILE" in str(error)
    assert peer.cancelled.is_set()
    peer.close()


def test_a_study_query_cut_off_at_the_cap_is_asked_again_in_halves():
    peer = RawPeer(flooding(first_only=True))

    def work():
        with open_session(node(peer), "SCU", Timeouts(find_answers=500)) as session:
            log = __import__("logging").getLogger("test")
            return find_studies_split(session, date(2026, 1, 1), date(2026, 1, 2), log)

    rows = in_thread(work)

    assert len(rows) == 4  # two halves of two answers each, on the same association
    peer.close()


def final_with(patch):
    """A script: one answer, then a final response whose command set ``patch`` breaks."""

    def script(peer: RawPeer, conn, request: Request) -> None:
        final = patch(find_rsp(0x0000, request.message_id, has_data=False))
        conn.sendall(
            pdata(
                pdv(request.context_id, 3, find_rsp(0xFF00, request.message_id)),
                pdv(request.context_id, 2, identifier("1.2.3")),
                pdv(request.context_id, 3, final),
            )
        )

    return RawPeer(script)


@pytest.mark.parametrize("both_paths", ["raw"], indirect=True)  # raw path only: README
@pytest.mark.parametrize(
    ("patch", "words"),
    [
        # AffectedSOPClassUID claims 4 KB: the data set type and Status are swallowed.
        (lambda c: with_length(c, 0x0002, 4096), "(0000,0002) is 4096 bytes long"),
        # the last element, Status, claims 0x10000 bytes with 2 present.
        (lambda c: with_length(c, 0x0900, 0x10000), "(0000,0900) is 65536 bytes long"),
        (lambda c: c[:-1], "(0000,0900) is 2 bytes long, but only 1 follow"),
        (lambda c: c + b"\x00\x00\x01", "3 stray bytes"),
    ],
    ids=["element-past-data", "status-0x10000", "status-cut", "stray-bytes"],
)
def test_a_malformed_final_response_fails_at_once_with_the_reason(patch, words):
    """Before: an element running past the data made the reader wait the DIMSE timeout for a
    data set that never came; a Status of length 0x10000 was taken as success."""
    peer = final_with(patch)
    started = time.monotonic()

    error = find(peer, Timeouts(dimse=15))

    assert isinstance(error, AssociationAborted), error
    assert words in str(error) and "invalid response" in str(error)
    assert time.monotonic() - started < 5  # at once, not the 15 s DIMSE timeout
    assert peer.closed.wait(10)  # aborted
    peer.close()


@pytest.mark.parametrize("both_paths", ["raw"], indirect=True)  # raw path only: README
def test_an_answer_whose_data_set_is_cut_short_fails_the_query_at_once():
    """Before: pydicom read the cut data set silently (a UID cut short was taken)."""

    def script(peer: RawPeer, conn, request: Request) -> None:
        cut = identifier("1.2.826.0.1.3680043.9.7")[:-5]
        conn.sendall(
            pdata(
                pdv(request.context_id, 3, find_rsp(0xFF00, request.message_id)),
                pdv(request.context_id, 2, cut),
                pdv(request.context_id, 3, find_rsp(0x0000, request.message_id, has_data=False)),
            )
        )

    peer = RawPeer(script)

    error = find(peer, Timeouts(dimse=15))

    assert isinstance(error, AssociationAborted)
    assert "an answer that cannot be read" in str(
        error
    ) and "(0020,000D) is 24 bytes long, but only 19 follow" in str(error)
    peer.close()
