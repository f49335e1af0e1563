"""The tool can only query and move: it asks for no service that stores, changes or deletes."""

from pathlib import Path

from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicom_sync_dagster.dicom import session


def test_sessions_request_only_echo_find_and_move():
    assert set(session._CONTEXTS) == {
        Verification,
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
    }


def test_no_code_path_sends_store_or_n_services():
    """Only synthetic.py (test and demo data) stores, and never to the configured nodes."""
    package = Path(session.__file__).parents[1]
    source = "\n".join(p.read_text() for p in package.rglob("*.py") if p.name != "synthetic.py")
    for call in ("send_c_store", "send_n_delete", "send_n_set", "send_n_create", "send_c_get"):
        assert call not in source, call
