"""Upload latency for any ArtifactStore, measured in one place for both hosts."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterator

from ..domain.ports import ArtifactStore, StoredArtifact, Telemetry


class TimedArtifactStore:
    """An ArtifactStore that records each upload's time as ``StorageUploadLatency``.

    The time includes the store's own retries, which is what a job waits for.
    Every other call goes straight to the wrapped store.
    """

    def __init__(self, store: ArtifactStore, telemetry: Telemetry) -> None:
        self._store = store
        self._telemetry = telemetry

    def put_file(self, key: str, path: Path, content_type: str) -> StoredArtifact:
        with self._timed_upload():
            return self._store.put_file(key, path, content_type)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredArtifact:
        with self._timed_upload():
            return self._store.put_bytes(key, data, content_type)

    @contextlib.contextmanager
    def _timed_upload(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self._telemetry.observe("StorageUploadLatency", time.monotonic() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
