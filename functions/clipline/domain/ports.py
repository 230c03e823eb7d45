"""What the use cases need from the outside world. Adapters implement these.

Each port has an AWS adapter, a local adapter and a test fake, and one contract
suite (tests/integration) runs against all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Collection, Protocol, Sequence

from .asr_jobs import AsrJob
from .job_listing import JobPage
from .jobs import (
    ClipInfo,
    ClipRequest,
    Job,
    JobChange,
    JobError,
    JobStatus,
    SourceInfo,
    SubtitleStyle,
)
from .subtitles import Cue
from .transcripts import Transcript
from .uploads import Upload
from .webhooks import Webhook


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

    def list_expired(self, now: datetime, limit: int) -> list[Job]:
        """Up to ``limit`` jobs whose ``expires_at`` has passed, whatever their status."""
        ...

    def missing(self, job_ids: Collection[str]) -> set[str]:
        """The ids among ``job_ids`` that name no job: one read for many, for the cleanup's search for orphaned files.

        Raises:
            StorageUnavailableError: the store could not be reached.
        """
        ...

    def record_webhook(self, job_id: str, webhook: Webhook) -> Job:
        """Replace a finished job's webhook record (the one part of a finished job that changes).

        Raises:
            JobNotFoundError: no such job.
            JobNotReadyError: the job has not ended.
        """
        ...

    def list_owned(self, owner: str, *, status: JobStatus | None, limit: int, after: str | None) -> JobPage:
        """Up to ``limit`` of ``owner``'s jobs (of ``status``, when given), newest first, read by index.

        ``after`` is a listing key (clipline.domain.job_listing): the page starts with
        the job that sorts just below it.

        Raises:
            StorageUnavailableError: the store could not be reached.
        """
        ...

    def list_unfinished(self, limit: int) -> list[Job]:
        """Up to ``limit`` jobs that are queued or running, in no particular order.

        For recovery after a restart, not for request paths: a store may have to read every job to answer.

        Raises:
            StorageUnavailableError: the store could not be reached.
        """
        ...

    def mark_deleted(self, job_id: str) -> Job:
        """Record that an ended job's artifacts are deleted (clipline.domain.jobs.deleted), atomically.

        Raises:
            JobNotFoundError: no such job.
            JobNotReadyError: the job has not ended.
        """
        ...


class AsrJobRepository(Protocol):
    """Stores ASR records and answers transcript-cache lookups.

    At most one ``done`` record exists per (media hash, model version), however
    many workers finish the same audio at once.
    """

    def create(self, record: AsrJob) -> None:
        """Store a new record (running, or reused for a cache hit)."""
        ...

    def get(self, asr_job_id: str) -> AsrJob:
        """Raises:
        AsrJobNotFoundError: no such record.
        """
        ...

    def heartbeat(self, asr_job_id: str, at: datetime) -> None:
        """Record that the worker on this record is alive."""
        ...

    def find_cached(self, media_hash: str, model_version: str) -> AsrJob | None:
        """The finished record for this audio and model version, if any."""
        ...

    def finish(self, asr_job_id: str, transcript_key: str, at: datetime) -> AsrJob:
        """Mark the record done, making it the cache entry for its key, and return the cache entry.

        If another record already finished the same (media hash, model version),
        this one becomes ``superseded`` and the other is returned: callers use the
        returned entry's transcript so every job on that audio agrees.
        """
        ...

    def fail(self, asr_job_id: str, error: JobError, at: datetime) -> None:
        """Mark a running record failed."""
        ...

    def list_expired(self, now: datetime, limit: int) -> list[AsrJob]:
        """Up to ``limit`` records whose ``expires_at`` has passed."""
        ...

    def delete(self, asr_job_id: str) -> None:
        """Remove the record (and, for a finished one, its cache entry). Removing a missing record is not an error."""
        ...

    def extend(self, asr_job_id: str, expires_at: datetime) -> None:
        """Keep the record until at least ``expires_at`` (never shortens): a cache entry lives as long as its last user."""
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

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredArtifact:
        """Store ``data`` under ``key``, as put_file does.

        Raises:
            StorageUnavailableError: the upload failed after the store's own retries.
        """
        ...

    def read_bytes(self, key: str) -> bytes:
        """The whole object; for small ones such as transcripts.

        Raises:
            ArtifactNotFoundError: nothing is stored under ``key``.
            StorageUnavailableError: the store could not be reached.
        """
        ...

    def download(self, key: str, destination: Path) -> None:
        """Copy the object to the file ``destination``.

        Raises:
            ArtifactNotFoundError: nothing is stored under ``key``.
            StorageUnavailableError: the store could not be reached.
        """
        ...

    def exists(self, key: str) -> bool:
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many. Idempotent."""
        ...

    def signed_url(self, key: str, expires_at: datetime) -> str:
        """A link that downloads ``key`` until ``expires_at`` and is refused after it or if altered."""
        ...

    def signed_upload(self, key: str, content_type: str, size_bytes: int, expires_at: datetime) -> "SignedUpload":
        """A link that stores one PUT of exactly ``size_bytes`` of ``content_type`` at ``key`` until ``expires_at``.

        A PUT of another size or type, after the expiry, or through an altered link is refused.
        """
        ...

    def stat(self, key: str) -> "StoredObject | None":
        """What is stored at ``key``, or None when nothing is.

        Raises:
            StorageUnavailableError: the store could not be reached.
        """
        ...

    def source_location(self, key: str, expires_at: datetime) -> str:
        """Where ffmpeg reads ``key`` from directly, until ``expires_at``: a file, or a presigned link."""
        ...


@dataclass(frozen=True)
class SignedUpload:
    url: str
    # Headers the PUT must carry, as signed.
    headers: dict[str, str]


@dataclass(frozen=True)
class StoredObject:
    size_bytes: int
    # None where the store does not keep it (local mode checked it when the object was stored).
    content_type: str | None


class UploadRepository(Protocol):
    """Stores upload records. Creating one never overwrites another."""

    def create(self, upload: Upload) -> None:
        """Raises:
        StorageUnavailableError: the store could not be reached.
        """
        ...

    def get(self, upload_id: str) -> Upload:
        """Raises:
        UploadNotFoundError: no such upload (or it has been removed).
        """
        ...

    def delete(self, upload_id: str) -> None:
        """Remove the record; removing a missing one is not an error."""
        ...

    def list_expired(self, now: datetime, limit: int) -> list[Upload]:
        """Up to ``limit`` uploads whose ``expires_at`` has passed."""
        ...


class WorkflowStarter(Protocol):
    """Starts the pipeline state machine for a job, and stops it."""

    def start(self, job: Job) -> str:
        """Start the execution named after the job, with its options, and return its ARN.

        Raises:
            ServiceUnavailableError: the orchestrator refused or could not be reached.
        """
        ...

    def stop(self, job_id: str, cause: str) -> None:
        """Stop the job's execution, and any of its work running where this host can reach it.

        An execution that has ended, or never started, is not an error. A task already
        running when its execution stops runs on where the host cannot reach it (a Lambda
        invocation): it stops itself when it next writes to the job, which it finds ended.

        Raises:
            ServiceUnavailableError: the orchestrator refused or could not be reached.
        """
        ...


class TaskCallback(Protocol):
    """Reports on a task the state machine is waiting on (``waitForTaskToken``)."""

    def heartbeat(self, task_token: str) -> None:
        """Tell the state machine the worker is alive.

        Raises:
            TaskAbandonedError: the task no longer waits (it timed out, was retried or its execution ended).
        """
        ...

    def succeed(self, task_token: str, output: dict) -> None:
        """Finish the task with ``output`` as its result.

        Raises:
            TaskAbandonedError: the task no longer waits.
        """
        ...

    def fail(self, task_token: str, error_name: str, cause: str) -> None:
        """Fail the task; ``error_name`` is what the state's Retry and Catch match.

        Raises:
            TaskAbandonedError: the task no longer waits.
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
    def probe(self, url: str, from_storage: bool = False) -> SourceInfo:
        """Streams, codecs and duration of a source: a user's URL, or (``from_storage``) an upload's location.

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


class SubtitleBurner(Protocol):
    def burn(
        self, clip: Path, cues: Sequence[Cue], style: SubtitleStyle, work_dir: Path, on_progress: ProgressCallback
    ) -> Path:
        """``clip`` with ``cues`` rendered into its picture, as H.264 MP4 (the clip's audio copied) under ``work_dir``.

        Cue text is shown literally: ASS override tags and escapes in it are not interpreted.

        Raises:
            NoVideoStreamError: the clip has no video to draw on.
            BurnInFailedError: ffmpeg could not render the subtitles.
            ClipTimeoutError: ffmpeg ran past its time limit and was killed.
        """
        ...


class AudioExtractor(Protocol):
    def extract(self, media: Path, work_dir: Path) -> Path:
        """The speech track of ``media`` as mono 16 kHz 16-bit PCM WAV, written under ``work_dir``.

        Raises:
            NoAudioError: the media has no audio stream.
            AudioExtractionError: ffmpeg could not decode it.
        """
        ...


class Transcriber(Protocol):
    """A speech-recognition provider: whisper, openai, transcribe or fake."""

    provider: str
    model: str

    def model_version(self) -> str:
        """Identifies the model exactly (name and weights); transcripts are cached per (audio, model version)."""
        ...

    def transcribe(self, audio: Path, language: str | None, on_progress: ProgressCallback) -> Transcript:
        """Transcribe ``audio`` (mono 16 kHz PCM WAV) in ``language``, or detect it when None.

        ``on_progress`` receives 0.0-1.0 as the work advances.

        Raises:
            TranscriptionTimeoutError: the provider did not finish within its time limit.
            TranscriptionUpstreamError: the provider failed or could not be reached.
            TranscriptionRejectedError: the provider refused the audio or the request.
        """
        ...


class Telemetry(Protocol):
    """Measures what happened; Powertools Metrics in production, a recorder in tests.

    Names, units and dimensions are those of ``clipline.metric_catalog``.
    """

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        """Add ``value`` to the counter ``name``.

        Raises:
            ValueError: ``name`` is not a counter of the catalog, or its dimensions differ.
        """
        ...

    def observe(self, name: str, value: float, **dimensions: str) -> None:
        """Record one observation (a duration) of the histogram ``name``.

        Raises:
            ValueError: ``name`` is not a histogram of the catalog, or its dimensions differ.
        """
        ...


@dataclass(frozen=True)
class WebhookResponse:
    """How one webhook attempt ended: the receiver's status, or why no answer came (``status`` None)."""

    status: int | None
    error: str | None = None


class WebhookSender(Protocol):
    """POSTs webhook messages under the egress policy."""

    def post(self, url: str, headers: dict[str, str], body: bytes) -> WebhookResponse:
        """Send ``body`` to ``url`` once and say how the receiver answered.

        The host is resolved once and checked as sources are, and the connection goes
        to the address that was checked; a redirect is an answer, never followed. The
        whole exchange ends by the sender's timeout, and the answer's body is read only
        to a small cap. The receiver's faults, and a refused address, are answers with
        an ``error``, never exceptions.
        """
        ...


class WebhookSecrets(Protocol):
    """One signing secret (``whsec_...``) per API key id."""

    def secret_for(self, owner: str) -> str:
        """The key's secret, made on first use.

        Raises:
            ServiceUnavailableError: the secret store could not be reached.
        """
        ...

    def rotate(self, owner: str) -> str:
        """Replace the key's secret with a new one, and return it. Raises ServiceUnavailableError."""
        ...


class WebhookQueue(Protocol):
    """Where a job's due webhook message is announced, to be delivered soon after."""

    def announce(self, job_id: str, message_id: str, round: int) -> None:
        """Say that ``message_id`` of ``job_id`` is due now, in its ``round`` (0, then one more per redelivery).

        Raises:
            ServiceUnavailableError: the queue could not be reached.
        """
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        ...
