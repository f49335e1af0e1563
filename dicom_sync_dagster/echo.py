"""C-ECHO both nodes of a route's settings (`dicom-sync echo`, `dicom-sync configure`)."""

from __future__ import annotations

import time

from .dicom.node import DicomNode
from .settings import SyncSettings


def echo_nodes(settings: SyncSettings) -> list[tuple[DicomNode, bool, str]]:
    """C-ECHO the remote and the local node as ``settings.calling_ae``: (node, ok, verdict)."""
    from .dicom import DicomError, open_session

    results = []
    for node in (settings.remote, settings.local):
        started = time.monotonic()
        try:
            with open_session(node, settings.calling_ae, settings.timeouts) as session:
                status = session.echo()
        except (DicomError, OSError) as exc:
            results.append((node, False, f"FAILED - {getattr(exc, 'reason', exc)}"))
            continue
        milliseconds = (time.monotonic() - started) * 1000
        verdict = "OK" if status == 0 else f"answered with status 0x{status:04X}"
        results.append((node, status == 0, f"{verdict} ({milliseconds:.0f} ms)"))
    return results
