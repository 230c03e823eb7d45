"""What the use cases need from the outside world. Adapters implement these.

Each port has an AWS adapter, a local adapter and a test fake, and one contract
suite (tests/integration) runs against all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Protocol

from .jobs import ClipInfo, ClipRequest, Job, JobChange, SourceInfo


@dataclass(frozen=True)
class IdempotencyClaim:
    """A client's Idempotency-Key, scoped to its API key, with a hash of the request it came with."""

    owner: str
    key: str
    request_hash: str
    expires_at: datetime


class JobRepository(Protocol):
    """Stores jobs. Every write is atomic; a finished job never changes."""

    def create(self, job: Job, claim: IdempotencyClaim | None = None) -> Job:
        """Store a new job and, atomically with it, its idempotency claim.

        Returns the stored job: ``job`` itself, or the job an earlier request with
        the same claim (same owner, key and request hash) created.

        Raises:
            IdempotencyKeyReusedError: the claim's key was used with a different request.
            StorageUnavailableError: the store could not be reached.
        """
        ...

    def get(self, job_id: str) -> Job:
        """The job.

        Raises:
            JobNotFoundError: no such job (or it has been removed).
        """
        ...

    def update(self, job_id: str, change: JobChange) -> Job:
        """Apply ``change`` atomically and return the job after it.

        Raises:
            JobNotFoundError: no such job.
            JobFinishedError: the job is already succeeded or failed.
        """
        ...

    def delete(self, job_id: str) -> None:
        """Remove the job and any idempotency claim that points at it. Removing a missing job is not an error."""
        ...


@dataclass(frozen=True)
class StoredArtifact:
    key: str
    size_bytes: int
    content_type: str


class ArtifactStore(Protocol):
    """Stores job artifacts and hands them out as expiring signed links."""

    def put_file(self, key: str, path: Path, content_type: str) -> StoredArtifact:
        """Upload ``path`` under ``key``; a reader never sees a partial object.

        Raises:
            StorageUnavailableError: the upload failed after the store's own retries.
        """
        ...

    def exists(self, key: str) -> bool:
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many. Idempotent."""
        ...

    def signed_url(self, key: str, expires_at: datetime) -> str:
        """A link that downloads ``key`` until ``expires_at`` and is refused after it or if altered."""
        ...


class WorkflowStarter(Protocol):
    """Starts the pipeline state machine for a job."""

    def start(self, job_id: str, correlation_id: str) -> str:
        """Start the execution named after the job and return its ARN.

        Raises:
            ServiceUnavailableError: the orchestrator refused or could not be reached.
        """
        ...


class SourceGuard(Protocol):
    """Decides whether a source URL may be fetched."""

    def check(self, url: str) -> None:
        """Raises:
        UnsupportedSourceUrlError: not an http(s) URL.
        SourceNotAllowedError: the host is not allowed (allowlist, private or loopback address).
        """
        ...


ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class ClipOutcome:
    path: Path
    info: ClipInfo


class MediaProber(Protocol):
    def probe(self, url: str) -> SourceInfo:
        """Streams, codecs and duration of a source.

        Raises:
            SourceNotFoundError, SourceUnreachableError, SourceNotMediaError.
        """
        ...


class MediaClipper(Protocol):
    def clip(
        self, request: ClipRequest, source: SourceInfo, work_dir: Path, on_progress: ProgressCallback
    ) -> ClipOutcome:
        """Cut ``request``'s range into a file under ``work_dir``, calling ``on_progress`` (0.0-1.0) as it goes.

        Raises:
            ClipFailedError: neither stream copy nor re-encode produced a valid clip.
            ClipTimeoutError: ffmpeg ran past its time limit and was killed.
            SourceUnreachableError: the source went away mid-read.
        """
        ...


class Telemetry(Protocol):
    """Counts what happened; Powertools Metrics in production, a recorder in tests."""

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        """Add ``value`` to metric ``name``; a name ending in ``Seconds`` counts seconds."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        ...
