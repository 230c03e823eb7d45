"""Creating jobs and reading them back: the API's use cases."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .. import errors
from ..jobs import (
    ClipAccuracy,
    ClipRequest,
    Job,
    JobStatus,
    SubtitleStyle,
    new_job,
)
from ..ports import (
    IdempotencyClaim,
)
from ..subtitles import parse_srt, render_srt
from ..timecodes import parse_position
from .context import SUBTITLES_FILE, Services, artifact_key, artifact_prefix, get_job
from .uploads import uploaded_source
from .webhooks import checked_webhook_url

# A repeated Idempotency-Key is recognised for this long, as Stripe and Powertools do by default.
IDEMPOTENCY_WINDOW = timedelta(hours=24)
# Inline subtitles travel in the request body; an hour of dense subtitles is about 100 KB.
MAX_SUBTITLES_BYTES = 256 * 1024


@dataclass(frozen=True)
class NewJobRequest:
    source_url: str | None
    start: float | str
    end: float | str
    transcribe: bool = False
    language: str | None = None
    retention_seconds: int | None = None  # None: the service's retention
    accuracy: ClipAccuracy = ClipAccuracy.FRAME
    burn_subtitles: bool = False
    subtitle_style: SubtitleStyle = field(default_factory=SubtitleStyle)
    subtitles_srt: str | None = None  # the user's own subtitles, instead of a transcript
    webhook_url: str | None = None  # announced to when the job ends
    source_key: str | None = None  # an upload of the caller's, instead of source_url


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
        InvalidWebhookUrlError, WebhookUrlNotAllowedError, UploadNotFoundError, UploadExpiredError,
        UploadIncompleteError, UploadMismatchError,
        ValidationFailedError (a retention longer than the service's, or not exactly one of sourceUrl
        and sourceKey), ServiceUnavailableError.
    """
    start = parse_position(request.start, "start")
    end = parse_position(request.end, "end")
    # Durations are kept to the microsecond; a shorter range would be no range at all.
    if round(end - start, 6) <= 0:
        raise errors.InvalidTimeRangeError(f"start ({start}s) must be before end ({end}s)")
    subtitles = _own_subtitles(request)
    if (request.source_url is None) == (request.source_key is None):
        raise errors.ValidationFailedError("give exactly one of sourceUrl and sourceKey")
    clip_request = ClipRequest(
        source_url=_canonical_scheme(request.source_url) if request.source_url is not None else None,
        source_key=request.source_key,
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
    if request.source_url is not None:
        services.source_guard.check(request.source_url)
    else:
        # Read from storage, never through the egress policy: it is the caller's own finished upload.
        uploaded_source(services, owner, request.source_key)
    webhook_url = checked_webhook_url(services, request.webhook_url) if request.webhook_url is not None else None
    retention = _retention(services, request.retention_seconds)

    now = services.clock.now()
    job = new_job(clip_request, owner, correlation_id, now, retention, webhook_url)
    claim = None
    if idempotency_key is not None:
        claim = IdempotencyClaim(
            owner=owner,
            key=idempotency_key,
            request_hash=_request_hash(clip_request, retention, webhook_url),
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


def _request_hash(request: ClipRequest, retention: timedelta, webhook_url: str | None) -> str:
    # Defaults left out: a field added later, at its default, leaves earlier requests' hashes as they were.
    document = {**request.model_dump(mode="json", exclude_defaults=True), "retentionSeconds": retention.total_seconds()}
    if webhook_url is not None:
        document["webhookUrl"] = webhook_url
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def get_job_result(services: Services, job_id: str, owner: str) -> JobResult:
    """Signed links to every artifact of a succeeded job. Links never outlive the job.

    Raises:
        JobNotFoundError, ResultExpiredError, JobNotReadyError (still running),
        JobFailedError (it failed), JobCancelledError, JobDeletedError.
    """
    job = get_job(services, job_id, owner)
    now = services.clock.now()
    if job.is_expired(now):
        raise errors.ResultExpiredError(f"the result of job {job_id} expired at {job.expires_at.isoformat()}")
    if job.status is JobStatus.DELETED:
        raise errors.JobDeletedError(f"the artifacts of job {job_id} were deleted")
    if job.status is JobStatus.CANCELLED:
        raise errors.JobCancelledError(f"job {job_id} was cancelled; it has no result")
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
