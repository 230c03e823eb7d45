"""The pipeline's steps, one function per state of pipeline.asl.json, and what they share."""

from __future__ import annotations

import errno
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from .. import errors
from ..jobs import (
    Job,
    JobChange,
    JobStatus,
    Stage,
    overall_progress,
)
from .context import (
    BURNED_CLIP_ARTIFACT,
    CLIP_ARTIFACT,
    TRANSCRIPT_ARTIFACTS,
    Services,
    artifact_key,
    content_type_of,
)
from .webhooks import announce, ended_with

# Duration slack when comparing the requested end with the probed source duration (container rounding).
END_TOLERANCE_SECONDS = 0.001
# Progress writes are throttled so a fast ffmpeg does not hammer the job store.
PROGRESS_INTERVAL_SECONDS = 1.0


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
    if job.request.source_url is not None:
        services.source_guard.check(job.request.source_url)
    source = services.prober.probe(*_source_of(services, job))
    if job.request.end_seconds > source.duration_seconds + END_TOLERANCE_SECONDS:
        raise errors.RangeOutsideSourceError(
            f"end ({job.request.end_seconds:g}s) is past the end of the source ({source.duration_seconds:g}s)"
        )
    if job.request.transcribe and not source.has_audio:
        raise errors.NoAudioError("transcription was asked for, but the source has no audio stream")
    if job.request.burn_subtitles and not source.has_video:
        raise errors.NoVideoStreamError("burned-in subtitles were asked for, but the source has no video stream")
    return exit_stage(services, job, Stage.PROBE, source=source)


# How long a step may read an uploaded source through the location it is given.
_SOURCE_READ_WINDOW = timedelta(hours=1)


def _source_of(services: Services, job: Job) -> tuple[str, bool]:
    """Where the step reads the job's source, and whether that is storage (an upload) rather than the user's URL."""
    if job.request.source_key is None:
        assert job.request.source_url is not None
        return job.request.source_url, False
    expires_at = services.clock.now() + _SOURCE_READ_WINDOW
    return services.artifacts.source_location(job.request.source_key, expires_at), True


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
    location, from_storage = _source_of(services, job)
    request = job.request.model_copy(update={"source_url": location}) if from_storage else job.request
    with scratch_folder(services, f"clip-{job_id}-") as scratch:
        outcome = services.clipper.clip(request, job.source, scratch, ProgressReporter(services, job, Stage.CLIP))
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




def finalize_job(services: Services, job_id: str) -> Job:
    """Pipeline step 3: check every artifact is in place and mark the job succeeded.

    The same write makes the job's webhook message pending, which is then announced.

    Raises:
        StorageFailureError: an artifact the job records is missing.
        ServiceUnavailableError: the webhook queue could not be reached (FailJob announces it again).
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
            webhook=ended_with(job, JobStatus.SUCCEEDED, now),
        ),
    )
    services.telemetry.count("JobsSucceeded")
    services.telemetry.observe("JobDuration", seconds_since(job.created_at, now), outcome="succeeded")
    announce(services, job)
    return job



def seconds_since(start: datetime, now: datetime) -> float:
    return max((now - start).total_seconds(), 0.0)
