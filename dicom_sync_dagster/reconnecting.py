"""A session to one node that is opened when first needed and reopened when lost."""

from __future__ import annotations

import threading
from contextlib import ExitStack

from .dicom import DicomNode, DicomSession, open_session
from .settings import SyncSettings


class Reconnecting:
    """A session to one node that is reopened when its association was lost. ``lock`` is for
    threads that share it; setting ``stop`` ends a request in progress (C-CANCEL, A-ABORT)."""

    def __init__(
        self, node: DicomNode, settings: SyncSettings, stop: threading.Event | None = None
    ) -> None:
        self.node, self.settings = node, settings
        self.stop = stop or threading.Event()
        self._stack = ExitStack()
        self.session: DicomSession | None = None
        self.lock = threading.Lock()

    def get(self) -> DicomSession:
        if self.session is None or not self.session.assoc.is_established:
            self.close()
            self.session = self._stack.enter_context(
                open_session(self.node, self.settings.calling_ae, self.settings.timeouts, self.stop)
            )
        return self.session

    def close(self) -> None:
        self._stack.close()
        self.session = None
