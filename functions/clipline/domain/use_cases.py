"""What clipline does, one function per use case. Handlers call exactly one of these."""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from . import errors
from .jobs import (
    ClipAccuracy,
    ClipRequest,
    Job,
    JobChange,
    JobError,
    JobStatus,
    Stage,
    SubtitleStyle,
    new_job,
    overall_progress,
)
from .ports import (
    ArtifactStore,
    AsrJobRepository,
    AudioExtractor,
    Clock,
    IdempotencyClaim,
    JobRepository,
    MediaClipper,
    MediaProber,
    SourceGuard,
    SubtitleBurner,
    TaskCallback,
    Telemetry,
    Transcriber,
    WorkflowStarter,
)
from .subtitles import parse_srt, render_srt
from .timecodes import parse_position

# A repeated Idempotency-Key is recognised for this long, as Stripe and Powertools do by default.
IDEMPOTENCY_WINDOW = timedelta(hours=24)
# Duration slack when comparing the requested end with the probed source duration (container rounding).
END_TOLERANCE_SECONDS = 0.001
# Progress writes are throttled so a fast ffmpeg does not hammer the job store.
PROGRESS_INTERVAL_SECONDS = 1.0

CLIP_ARTIFACT = "clip"
BURNED_CLIP_ARTIFACT = "burned"
# The user's own subtitles, stored with the job when it is created.
SUBTITLES_FILE = "subtitles.srt"
# Inline subtitles travel in the request body; an hour of dense subtitles is about 100 KB.
MAX_SUBTITLES_BYTES = 256 * 1024
# Transcript artifacts by name, with their file name and content type.
TRANSCRIPT_ARTIFACTS = {
    "srt": ("transcript.srt", "application/x-subrip"),
    "vtt": ("transcript.vtt", "text/vtt"),
    "txt": ("transcript.txt", "text/plain; charset=utf-8"),
    "json": ("transcript.json", "application/json"),
}


@dataclass(frozen=True)
class Limits:
    max_clip_seconds: float
    retention: timedelta
    signed_url_ttl: timedelta
    # How often a busy ASR worker reports that it is alive: well inside the Transcribe state's HeartbeatSeconds.
    heartbeat_interval_seconds: float = 20.0


@dataclass(frozen=True)
class Services:
    """Everything the use cases touch, built once by clipline.composition."""

    jobs: JobRepository
    artifacts: ArtifactStore
    workflow: WorkflowStarter
    source_guard: SourceGuard
    prober: MediaProber
    clipper: MediaClipper
    telemetry: Telemetry
    clock: Clock
    limits: Limits
    work_dir: Path | None = None
    # Transcription; only the ASR worker uses these.
    asr_jobs: AsrJobRepository | None = None
    transcriber: Transcriber | None = None
    audio_extractor: AudioExtractor | None = None
    task_callback: TaskCallback | None = None
    # Burn-in; only the BurnIn step uses it.
    subtitle_burner: SubtitleBurner | None = None


@dataclass(frozen=True)
class NewJobRequest:
    source_url: str
    start: float | str
    end: float | str
    transcribe: bool = False
    language: str | None = None
    retention_seconds: int | None = None  # None: the service's retention
    accuracy: ClipAccuracy = ClipAccuracy.FRAME
    burn_subtitles: bool = False
    subtitle_style: SubtitleStyle = field(default_factory=SubtitleStyle)
    subtitles_srt: str | None = None  # the user's own subtitles, instead of a transcript


@dataclass(frozen=True)
class ArtifactLink:
    name: str
    key: str
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class JobResult:
    job: Job
    links: tuple[ArtifactLink, ...]


def create_job(
    services: Services,
    request: NewJobRequest,
    owner: str,
    correlation_id: str,
    idempotency_key: str | None = None,
) -> Job:
    """Validate a clip request, store the job and start its pipeline.

    A repeated ``idempotency_key`` with the same request returns the job the first
    request created; with a different request it raises IdempotencyKeyReusedError.
    If the pipeline cannot be started, or the user's subtitles cannot be stored, the job
    and its files are removed again, so nothing half-made stays.

    Raises:
        InvalidTimecodeError, InvalidTimeRangeError, ClipTooLongError,
        UnsupportedSourceUrlError, SourceNotAllowedError, IdempotencyKeyReusedError,
        ValidationFailedError (a retention longer than the service's), ServiceUnavailableError.
    """
    start = parse_position(request.start, "start")
    end = parse_position(request.end, "end")
    # Durations are kept to the microsecond; a shorter range would be no range at all.
    if round(end - start, 6) <= 0:
        raise errors.InvalidTimeRangeError(f"start ({start}s) must be before end ({end}s)")
    subtitles = _own_subtitles(request)
    clip_request = ClipRequest(
        source_url=_canonical_scheme(request.source_url),
        start_seconds=start,
        end_seconds=end,
        accuracy=request.accuracy,
        # Burned-in subtitles come from a transcript unless the user brings their own.
        transcribe=request.transcribe or (request.burn_subtitles and subtitles is None),
        language=request.language,
        burn_subtitles=request.burn_subtitles,
        subtitle_style=request.subtitle_style,
        subtitles_sha256=hashlib.sha256(subtitles).hexdigest() if subtitles is not None else None,
    )
    if clip_request.duration_seconds > services.limits.max_clip_seconds:
        raise errors.ClipTooLongError(
            f"the clip is {clip_request.duration_seconds:g}s; the maximum is {services.limits.max_clip_seconds:g}s"
        )
    services.source_guard.check(request.source_url)
    retention = _retention(services, request.retention_seconds)

    now = services.clock.now()
    job = new_job(clip_request, owner, correlation_id, now, retention)
    claim = None
    if idempotency_key is not None:
        claim = IdempotencyClaim(
            owner=owner,
            key=idempotency_key,
            request_hash=_request_hash(clip_request, retention),
            expires_at=now + IDEMPOTENCY_WINDOW,
        )
    stored = services.jobs.create(job, claim)
    if stored.id != job.id and stored.status is not JobStatus.QUEUED:
        return stored
    try:
        if subtitles is not None:
            # Written on a replay too: its first attempt may have died before writing
            # them, and the bytes are the same, since they are part of the request hash.
            services.artifacts.put_bytes(artifact_key(stored.id, SUBTITLES_FILE), subtitles, "application/x-subrip")
        # Starting is idempotent per job id, so a replay of a request whose first
        # attempt stored the job but died before starting it gets it started now.
        services.workflow.start(stored)
    except (errors.StorageUnavailableError, errors.ServiceUnavailableError):
        if stored.id == job.id:
            services.artifacts.delete_prefix(artifact_prefix(job.id))
            services.jobs.delete(job.id)
        raise
    if stored.id == job.id:
        services.telemetry.count("JobsCreated")
    return stored


def _own_subtitles(request: NewJobRequest) -> bytes | None:
    """The user's subtitles as canonical SubRip, or None when the transcript is to be burned in.

    Raises:
        InvalidSubtitlesError: not SubRip, empty, or over MAX_SUBTITLES_BYTES.
        ValidationFailedError: subtitles were given without burnSubtitles.
    """
    if request.subtitles_srt is None:
        return None
    if not request.burn_subtitles:
        raise errors.ValidationFailedError("subtitles are only used to burn them in: set burnSubtitles")
    if len(request.subtitles_srt.encode()) > MAX_SUBTITLES_BYTES:
        raise errors.InvalidSubtitlesError(f"subtitles are limited to {MAX_SUBTITLES_BYTES} bytes")
    try:
        cues = parse_srt(request.subtitles_srt)
    except ValueError as error:
        raise errors.InvalidSubtitlesError(str(error)) from None
    if not cues:
        raise errors.InvalidSubtitlesError("the subtitles have no cue with text")
    # Stored re-rendered: what is burned in is exactly what was validated.
    return render_srt(cues).encode()


def _canonical_scheme(url: str) -> str:
    """The URL with its scheme in lower case, so the guard and ffmpeg read it the same way."""
    scheme, separator, rest = url.strip().partition("://")
    return f"{scheme.lower()}{separator}{rest}" if separator else url.strip()


def _retention(services: Services, asked_seconds: int | None) -> timedelta:
    """How long the job is kept: the service's retention, or less if the job asks."""
    if asked_seconds is None:
        return services.limits.retention
    if asked_seconds > services.limits.retention.total_seconds():
        raise errors.ValidationFailedError(
            f"retentionSeconds may be at most {int(services.limits.retention.total_seconds())} (the service's retention)"
        )
    return timedelta(seconds=asked_seconds)


def _request_hash(request: ClipRequest, retention: timedelta) -> str:
    # Defaults left out: a field added later, at its default, leaves earlier requests' hashes as they were.
    document = {**request.model_dump(mode="json", exclude_defaults=True), "retentionSeconds": retention.total_seconds()}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def get_job(services: Services, job_id: str, owner: str) -> Job:
    """The job, if ``owner`` created it. Another key's job is reported as missing.

    Raises:
        JobNotFoundError.
    """
    job = services.jobs.get(job_id)
    if job.owner != owner:
        raise errors.JobNotFoundError(f"job {job_id} not found")
    return job


def get_job_result(services: Services, job_id: str, owner: str) -> JobResult:
    """Signed links to every artifact of a succeeded job. Links never outlive the job.

    Raises:
        JobNotFoundError, ResultExpiredError, JobNotReadyError (still running),
        JobFailedError (it failed).
    """
    job = get_job(services, job_id, owner)
    now = services.clock.now()
    if job.is_expired(now):
        raise errors.ResultExpiredError(f"the result of job {job_id} expired at {job.expires_at.isoformat()}")
    if job.status is JobStatus.FAILED:
        code = job.error.code if job.error else errors.InternalError.code
        raise errors.JobFailedError(f"job {job_id} failed with {code}; it has no result")
    if job.status is not JobStatus.SUCCEEDED:
        raise errors.JobNotReadyError(f"job {job_id} is {job.status.value}; poll GET /api/jobs/{job_id}")
    expires_at = min(now + services.limits.signed_url_ttl, job.expires_at)
    links = tuple(
        ArtifactLink(name=name, key=key, url=services.artifacts.signed_url(key, expires_at), expires_at=expires_at)
        for name, key in sorted(job.artifacts.items())
    )
    return JobResult(job=job, links=links)


def enter_stage(services: Services, job_id: str, stage: Stage) -> Job:
    """Mark the job running in ``stage``, with an event. Raises JobFinishedError for a finished job."""
    job = services.jobs.get(job_id)
    now = services.clock.now()
    return services.jobs.update(
        job_id,
        JobChange(
            status=JobStatus.RUNNING,
            stage=stage,
            progress=overall_progress(stage, 0.0, job.request),
            last_heartbeat_at=now,
            event=job.event("stageEntered", stage, now),
        ),
    )


def exit_stage(services: Services, job: Job, stage: Stage, **changes: object) -> Job:
    """Record that ``job`` finished ``stage``, applying ``changes`` with it."""
    now = services.clock.now()
    return services.jobs.update(
        job.id,
        JobChange(
            progress=overall_progress(stage, 1.0, job.request),
            last_heartbeat_at=now,
            event=job.event("stageExited", stage, now),
            **changes,
        ),
    )


def probe_source(services: Services, job_id: str) -> Job:
    """Pipeline step 1: check the source again at fetch time, probe it, and check the range fits.

    Raises:
        SourceNotAllowedError, SourceNotFoundError, SourceUnreachableError,
        SourceNotMediaError, RangeOutsideSourceError, NoAudioError (transcription asked,
        no audio), JobFinishedError.
    """
    job = enter_stage(services, job_id, Stage.PROBE)
    services.source_guard.check(job.request.source_url)
    source = services.prober.probe(job.request.source_url)
    if job.request.end_seconds > source.duration_seconds + END_TOLERANCE_SECONDS:
        raise errors.RangeOutsideSourceError(
            f"end ({job.request.end_seconds:g}s) is past the end of the source ({source.duration_seconds:g}s)"
        )
    if job.request.transcribe and not source.has_audio:
        raise errors.NoAudioError("transcription was asked for, but the source has no audio stream")
    if job.request.burn_subtitles and not source.has_video:
        raise errors.NoVideoStreamError("burned-in subtitles were asked for, but the source has no video stream")
    return exit_stage(services, job, Stage.PROBE, source=source)


class ProgressReporter:
    """Writes a stage's progress and the heartbeat to the job, at most once a second."""

    def __init__(self, services: Services, job: Job, stage: Stage) -> None:
        self._services = services
        self._job_id = job.id
        self._request = job.request
        self._stage = stage
        self._last_written: datetime | None = None

    def __call__(self, fraction: float) -> None:
        now = self._services.clock.now()
        if self._last_written and (now - self._last_written).total_seconds() < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_written = now
        self._services.jobs.update(
            self._job_id,
            JobChange(progress=overall_progress(self._stage, fraction, self._request), last_heartbeat_at=now),
        )


@contextmanager
def scratch_folder(services: Services, prefix: str) -> Iterator[Path]:
    """A folder in the work dir for one step's files, removed with everything in it when the step ends.

    Raises:
        StorageUnavailableError: the work dir cannot hold one (missing, full or not writable).
    """
    try:
        folder = tempfile.TemporaryDirectory(prefix=prefix, dir=services.work_dir)
    except OSError as error:
        raise errors.StorageUnavailableError(f"no scratch space in the work folder: {error.strerror or error}") from error
    with folder as name:
        try:
            yield Path(name)
        except OSError as error:
            # The step's own writes (a cut's parts, subtitle files) meeting a full disk: storage, not a bug.
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise errors.StorageUnavailableError(f"the work folder is full: {error.strerror}") from error


def clip_source(services: Services, job_id: str) -> Job:
    """Pipeline step 2: cut the clip (smart cut or stream copy, re-encoding when neither can be used) and store it.

    Raises:
        ClipFailedError, ClipTimeoutError, SourceUnreachableError,
        StorageUnavailableError, JobFinishedError.
    """
    job = enter_stage(services, job_id, Stage.CLIP)
    if job.source is None:
        raise errors.InternalError(f"job {job_id} reached the clip step without a probed source")
    with scratch_folder(services, f"clip-{job_id}-") as scratch:
        outcome = services.clipper.clip(job.request, job.source, scratch, ProgressReporter(services, job, Stage.CLIP))
        if outcome.info.fallback_reason:
            services.telemetry.count("FfmpegFallback", reason=outcome.info.fallback_reason)
        stored = services.artifacts.put_file(
            artifact_key(job_id, outcome.path.name), outcome.path, content_type_of(outcome.path)
        )
    services.telemetry.count("ProcessedClipSeconds", outcome.info.duration_seconds)
    return exit_stage_with_artifact(services, job, Stage.CLIP, CLIP_ARTIFACT, stored.key, clip=outcome.info)


def exit_stage_with_artifact(
    services: Services, job: Job, stage: Stage, name: str, key: str, **changes: object
) -> Job:
    """Record that ``stage`` stored artifact ``name`` at ``key``, and finished.

    Raises:
        JobFinishedError: the job ended while the stage worked (its state timed out and
            FailJob removed its files); the artifact written since is removed too.
    """
    try:
        return exit_stage(services, job, stage, artifacts={**job.artifacts, name: key}, **changes)
    except errors.JobFinishedError:
        services.artifacts.delete_prefix(key)
        raise


def content_type_of(path: Path) -> str:
    """The media type of a clip file: ``clip.m4a`` for audio-only sources, else MP4 video."""
    return "audio/mp4" if path.suffix == ".m4a" else "video/mp4"


def artifact_key(job_id: str, file_name: str) -> str:
    return f"{artifact_prefix(job_id)}{file_name}"


def artifact_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def finalize_job(services: Services, job_id: str) -> Job:
    """Pipeline step 3: check every artifact is in place and mark the job succeeded.

    Raises:
        StorageFailureError: an artifact the job records is missing.
    """
    job = enter_stage(services, job_id, Stage.FINALIZE)
    expected = {
        CLIP_ARTIFACT,
        *(TRANSCRIPT_ARTIFACTS if job.request.transcribe else ()),
        *((BURNED_CLIP_ARTIFACT,) if job.request.burn_subtitles else ()),
    }
    missing = sorted(expected - set(job.artifacts))
    missing += [name for name, key in job.artifacts.items() if not services.artifacts.exists(key)]
    if missing:
        raise errors.StorageFailureError(f"job {job_id} is missing artifacts: {missing}")
    now = services.clock.now()
    job = services.jobs.update(
        job_id,
        JobChange(
            status=JobStatus.SUCCEEDED,
            stage=Stage.DONE,
            progress=100,
            last_heartbeat_at=now,
            event=job.event("jobSucceeded", Stage.DONE, now, run_of=Stage.FINALIZE),
        ),
    )
    services.telemetry.count("JobsSucceeded")
    services.telemetry.observe("JobDuration", _seconds_since(job.created_at, now), outcome="succeeded")
    return job


@dataclass(frozen=True)
class RecordedFailure:
    """A job after ``fail_job``: ``newly_failed`` is False when it had already finished and was left alone.

    ``failed_stage`` is the stage that failed, or None when the failure came between stages.
    """

    job: Job
    newly_failed: bool
    failed_stage: Stage | None = None


# Errors of the Transcribe state itself; a heartbeat timeout before any worker
# picked the request up arrives as the first, with the Transcribe stage never entered.
_TRANSCRIPTION_ERRORS = {
    errors.TranscriptionTimeoutError.__name__,
    errors.TranscriptionUpstreamError.__name__,
    errors.TranscriptionRejectedError.__name__,
}


def fail_job(services: Services, job_id: str, error_name: str, cause: str | None) -> RecordedFailure:
    """Mark a job failed with the code of ``error_name`` and remove what it had written.

    Called by the state machine's Catch, and for executions that ended without one
    (the global timeout). Failing a job that already finished leaves it unchanged.
    """
    code = errors.code_for_error_name(error_name)
    message = _failure_message(code, cause)
    job = services.jobs.get(job_id)
    if job.status.is_terminal:
        return RecordedFailure(job, newly_failed=False)
    failed_stage = job.running_stage or (Stage.TRANSCRIBE if error_name in _TRANSCRIPTION_ERRORS else None)
    deleted = services.artifacts.delete_prefix(artifact_prefix(job_id))
    now = services.clock.now()
    try:
        job = services.jobs.update(
            job_id,
            JobChange(
                status=JobStatus.FAILED,
                artifacts={},
                error=JobError(code=code, message=message),
                last_heartbeat_at=now,
                event=job.event(
                    "jobFailed",
                    failed_stage or job.stage,
                    now,
                    code=code,
                    message=message if not deleted else f"{message} ({deleted} partial artifact(s) removed)",
                ),
            ),
        )
    except errors.JobFinishedError:
        return RecordedFailure(services.jobs.get(job_id), newly_failed=False)
    services.telemetry.count("JobsFailed", errorCode=code)
    services.telemetry.observe("JobDuration", _seconds_since(job.created_at, now), outcome="failed")
    if failed_stage is Stage.TRANSCRIBE:
        # A worker counts its own success; failures, heartbeat timeouts included, all end here.
        services.telemetry.count("AsrTranscriptions", status=code.lower())
    return RecordedFailure(job, newly_failed=True, failed_stage=failed_stage)


def _seconds_since(start: datetime, now: datetime) -> float:
    return max((now - start).total_seconds(), 0.0)


def _failure_message(code: str, cause: str | None) -> str:
    """The user-facing message of a failure: our own errors' messages, never internals."""
    if code == errors.InternalError.code:
        return "an internal error stopped the job"
    if code == errors.JobTimeoutError.code:
        return "the job ran past its time limit"
    message = None
    if cause:
        try:
            message = json.loads(cause).get("errorMessage")
        except (ValueError, AttributeError):
            message = None
    if code == errors.ClipTimeoutError.code and not message:
        return "a pipeline step ran past its time limit"
    return str(message or code)[:500]


# What an execution's terminal status means for a job the pipeline did not finish itself.
_EXECUTION_END_ERRORS = {
    "TIMED_OUT": errors.JobTimeoutError.__name__,
    "ABORTED": errors.JobAbortedError.__name__,
}


def record_execution_end(
    services: Services, job_id: str, status: str, error_name: str | None, cause: str | None
) -> RecordedFailure | None:
    """Fail a job whose execution ended (timed out, aborted, failed) while it was unfinished.

    Jobs that already succeeded or failed are left alone, so this is safe to repeat.
    """
    if status == "SUCCEEDED":
        return None
    try:
        job = services.jobs.get(job_id)
    except errors.JobNotFoundError:
        return None
    if job.status.is_terminal:
        return None
    return fail_job(services, job_id, _EXECUTION_END_ERRORS.get(status, error_name or "InternalError"), cause)


# Jobs read per round of ``interrupt_unfinished_jobs``.
INTERRUPT_BATCH = 100


@dataclass(frozen=True)
class Recovery:
    """What ``interrupt_unfinished_jobs`` did, job by job."""

    failed: list[RecordedFailure] = field(default_factory=list)
    # Ids of the jobs stored but never started that it started now.
    started: list[str] = field(default_factory=list)
    # Job id and the error that kept it from handling that job; the others were handled all the same.
    unhandled: list[tuple[str, Exception]] = field(default_factory=list)


def interrupt_unfinished_jobs(services: Services, reason: str) -> Recovery:
    """Settle every job still queued or running, and report what it did with each.

    For a host whose executions die with it (local mode keeps them in memory): called
    when it starts, before it takes requests, while no other host on the same store is
    alive, so every unfinished job lost its execution.

    A running job fails with INTERRUPTED through ``fail_job``, as a caught step failure
    does: partial artifacts removed, the failure counted; ``reason`` is the message users
    read. Its steps' scratch folders, which the kill left behind, are removed too.
    A queued job did no work yet, so it is started, as ``create_job`` starts a replayed
    request whose job was stored but never started; it fails like a running one if it
    cannot start, or if its own subtitles were never stored.

    A job that finishes or is removed meanwhile is left alone, so a second call changes
    nothing. A job whose handling raises is reported in ``unhandled`` and the rest are
    handled anyway: one bad record must not keep the host from starting.
    ASR records stay as they are: one left running is never a cache entry (only done
    ones are), no route shows it, and the sweeper removes it and its files when it expires.

    Raises:
        StorageUnavailableError: the job store could not list the unfinished jobs.
    """
    error_name = errors.JobInterruptedError.__name__
    cause = json.dumps({"errorType": error_name, "errorMessage": reason})
    recovery = Recovery()
    tried: set[str] = set()
    while True:
        # Handled jobs may stay listed (a started one is still queued); the limit grows past
        # the tried ones, so such a job cannot hide the rest or loop for ever.
        fresh = [job for job in services.jobs.list_unfinished(INTERRUPT_BATCH + len(tried)) if job.id not in tried]
        if not fresh:
            return recovery
        for job in fresh:
            tried.add(job.id)
            try:
                if job.status is JobStatus.QUEUED and _start_stored_job(services, job):
                    recovery.started.append(job.id)
                    continue
                recorded = fail_job(services, job.id, error_name, cause)
                if recorded.newly_failed:
                    recovery.failed.append(recorded)
                    remove_scratch_folders(services, job.id)
            except errors.JobNotFoundError:
                continue  # removed meanwhile, by `clipline cleanup` in another process
            except Exception as error:  # noqa: BLE001 - reported to the caller, who logs it
                recovery.unhandled.append((job.id, error))


def _start_stored_job(services: Services, job: Job) -> bool:
    """Start the execution of a job stored but never started; False when it cannot run."""
    if job.request.subtitles_sha256 is not None and not services.artifacts.exists(artifact_key(job.id, SUBTITLES_FILE)):
        return False  # only the lost request held them
    try:
        services.workflow.start(job)
    except errors.ServiceUnavailableError:
        return False
    return True


def remove_scratch_folders(services: Services, job_id: str) -> list[Path]:
    """Remove the scratch folders of ``job_id``'s steps from the work dir, and return them.

    For a job whose host was killed mid-step: ``scratch_folder`` removes its folder only
    when the step ends. Each step names its folder ``<step>-<job id>-<random>`` at its own
    call site; matching any step keeps a new one covered without a list of prefixes to
    keep in step with those call sites, and a job id (a UUID) names no one else's folder.
    """
    work_dir = services.work_dir or Path(tempfile.gettempdir())
    folders = [path for path in work_dir.glob(f"*-{job_id}-*") if path.is_dir() and not path.is_symlink()]
    for folder in folders:
        shutil.rmtree(folder)
    return folders
