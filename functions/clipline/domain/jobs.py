"""The job: what a user asked for, where the pipeline is, and what it produced."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import ConfigDict, Field, StrictFloat, StrictInt

from .errors import JobFinishedError, JobNotReadyError, WebhookSupersededError
from .models import DomainModel
from .webhooks import Webhook, WebhookState

# How many events a status response shows; older ones stay in the execution history.
RECENT_EVENTS = 20


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Stopped by its owner before it ended; it has no artifacts.
    CANCELLED = "cancelled"
    # Ended, then its artifacts deleted by its owner; the record stays until it expires.
    DELETED = "deleted"

    @property
    def is_terminal(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


class Stage(StrEnum):
    """Pipeline stages, in the order pipeline.asl.json runs them."""

    QUEUED = "queued"
    PROBE = "probe"
    CLIP = "clip"
    TRANSCRIBE = "transcribe"
    BURN_IN = "burnIn"
    FINALIZE = "finalize"
    DONE = "done"


# The share of overall progress each stage starts at; a stage's own progress fills
# the gap to the next stage the job runs. Transcription takes longer than the cut.
STAGE_PROGRESS_START = {
    Stage.QUEUED: 0,
    Stage.PROBE: 2,
    Stage.CLIP: 10,
    Stage.TRANSCRIBE: 40,
    Stage.BURN_IN: 75,
    Stage.FINALIZE: 95,
    Stage.DONE: 100,
}


def stages_of(request: "ClipRequest") -> tuple[Stage, ...]:
    """The stages a job with ``request`` goes through, in order."""
    skipped = set()
    if not request.transcribe:
        skipped.add(Stage.TRANSCRIBE)
    if not request.burn_subtitles:
        skipped.add(Stage.BURN_IN)
    return tuple(stage for stage in Stage if stage not in skipped)


def overall_progress(stage: Stage, stage_fraction: float, request: "ClipRequest") -> int:
    """Overall progress 0-100 from the current stage and how far that stage is (0.0-1.0)."""
    order = stages_of(request)
    start = STAGE_PROGRESS_START[stage]
    following = order[order.index(stage) + 1] if stage is not Stage.DONE else Stage.DONE
    end = STAGE_PROGRESS_START[following]
    return int(start + (end - start) * min(max(stage_fraction, 0.0), 1.0))


# The pipeline.asl.json state that runs each stage: job events and the execution
# history name steps alike, so a user can read one beside the other.
STAGE_STATES = {
    Stage.PROBE: "ProbeSource",
    Stage.CLIP: "ClipSource",
    Stage.TRANSCRIBE: "Transcribe",
    Stage.BURN_IN: "BurnIn",
    Stage.FINALIZE: "FinalizeJob",
}


class JobEvent(DomainModel):
    at: datetime
    type: str = Field(description="stageEntered, stageExited, jobSucceeded, jobFailed, jobCancelled or jobDeleted")
    stage: Stage
    state: str | None = Field(None, description="The state machine state of the stage, as the execution history names it")
    attempt: int | None = Field(None, description="1 for the state's first run, 2 for its first retry, and so on")
    duration_seconds: float | None = Field(None, description="How long the state ran, on the event that ends it")
    message: str | None = None
    code: str | None = None


class JobError(DomainModel):
    code: str
    message: str


class SourceInfo(DomainModel):
    duration_seconds: float
    has_video: bool
    has_audio: bool
    video_codec: str | None = None
    audio_codec: str | None = None
    frame_rate: float | None = None
    container: str | None = None
    rotation_degrees: float = Field(0.0, description="Display rotation of the video (its display matrix), as ffmpeg reports it")

    @property
    def frame_duration_seconds(self) -> float | None:
        return 1.0 / self.frame_rate if self.frame_rate else None


class ClipInfo(DomainModel):
    duration_seconds: float
    size_bytes: int
    method: str = Field(description="copy (stream copy), smart (re-encoded head + copied rest) or reencode (H.264/AAC)")
    fallback_reason: str | None = None


class ClipAccuracy(StrEnum):
    """How exactly a clip keeps to the requested range."""

    # Stream copy: fast, but starts at the keyframe at or before ``start``.
    KEYFRAME = "keyframe"
    # Starts at ``start`` and ends at ``end``, within one frame (smart cut).
    FRAME = "frame"


class SubtitlePosition(StrEnum):
    BOTTOM = "bottom"
    TOP = "top"


# Style sizes are in pixels of a 1080-line frame and scale with the clip's height,
# so one style reads the same on 720p and 1080p.
STYLE_REFERENCE_HEIGHT = 1080
_COLOUR = r"^#[0-9A-Fa-f]{6}$"


class SubtitleStyle(DomainModel):
    """How burned-in subtitles look."""

    # A misspelt option must be refused, not silently ignored.
    model_config = ConfigDict(extra="forbid")

    # Strict, as the API's request fields are: a style arrives in job requests.
    font_size: StrictInt = Field(54, ge=12, le=200, description="Text height in pixels of a 1080-line frame")
    primary_colour: str = Field("#FFFFFF", pattern=_COLOUR, description="Text colour, #RRGGBB")
    outline_colour: str = Field("#000000", pattern=_COLOUR, description="Outline colour, #RRGGBB")
    outline_width: StrictFloat = Field(3.0, ge=0, le=20, description="Outline width in pixels of a 1080-line frame")
    margin_vertical: StrictInt = Field(60, ge=0, le=500, description="Distance from the frame's edge in pixels of a 1080-line frame")
    position: SubtitlePosition = SubtitlePosition.BOTTOM


class ClipRequest(DomainModel):
    # One or the other: a URL fetched through the egress policy, or an upload read from storage.
    source_url: str | None = None
    source_key: str | None = Field(None, description="The storage key of the upload the job clips, instead of a URL")
    start_seconds: float
    end_seconds: float
    accuracy: ClipAccuracy = ClipAccuracy.FRAME
    transcribe: bool = False
    language: str | None = Field(None, description="ISO 639-1 language of the speech; None lets the provider detect it")
    burn_subtitles: bool = False
    subtitle_style: SubtitleStyle = Field(default_factory=SubtitleStyle)
    subtitles_sha256: str | None = Field(
        None, description="SHA-256 of the user's own SubRip subtitles, stored with the job and burned in instead of a transcript"
    )

    @property
    def duration_seconds(self) -> float:
        return round(self.end_seconds - self.start_seconds, 6)


class TranscriptInfo(DomainModel):
    """What the job's transcription produced; the transcript itself is an artifact."""

    asr_job_id: str
    provider: str
    model: str
    model_version: str
    language: str
    cache_hit: bool
    segments: int
    words: int


class Job(DomainModel):
    id: str
    status: JobStatus
    stage: Stage
    progress: int = Field(ge=0, le=100)
    request: ClipRequest
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    owner: str = Field(description="The API key id that created the job; never the key itself.")
    correlation_id: str
    last_heartbeat_at: datetime | None = None
    source: SourceInfo | None = None
    clip: ClipInfo | None = None
    transcript: TranscriptInfo | None = None
    artifacts: dict[str, str] = Field(default_factory=dict, description="artifact name -> storage key")
    error: JobError | None = None
    events: tuple[JobEvent, ...] = ()
    webhook: Webhook | None = Field(None, description="Where the job's end is announced, and how that went")

    @property
    def recent_events(self) -> tuple[JobEvent, ...]:
        return self.events[-RECENT_EVENTS:]

    @property
    def running_stage(self) -> Stage | None:
        """The stage entered and not yet left, if any: the one a failure now interrupts."""
        last = self.events[-1] if self.events else None
        return last.stage if last is not None and last.type == "stageEntered" else None

    def event(
        self, type: str, stage: Stage, at: datetime, *, run_of: Stage | None = None, **details: str | None
    ) -> JobEvent:
        """An event of this job, timed like the execution history times a state.

        ``stageEntered`` starts a run of ``stage`` and gets its attempt number; any
        other event ends the running run of ``run_of`` (default ``stage``), when
        there is one, and gets its attempt number and duration.
        """
        timed = run_of or stage
        entries = [event for event in self.events if event.type == "stageEntered" and event.stage is timed]
        timing: dict = {"state": STAGE_STATES.get(timed)}
        if type == "stageEntered":
            timing["attempt"] = len(entries) + 1
        elif self.running_stage is timed:
            timing |= {
                "attempt": len(entries),
                "duration_seconds": round(max((at - entries[-1].at).total_seconds(), 0.0), 3),
            }
        return JobEvent(at=at, type=type, stage=stage, **timing, **details)

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def new_job_id() -> str:
    return uuid.uuid4().hex


def new_job(
    request: ClipRequest,
    owner: str,
    correlation_id: str,
    now: datetime,
    retention: timedelta,
    webhook_url: str | None = None,
) -> Job:
    return Job(
        id=new_job_id(),
        status=JobStatus.QUEUED,
        stage=Stage.QUEUED,
        progress=0,
        request=request,
        created_at=now,
        updated_at=now,
        expires_at=now + retention,
        owner=owner,
        correlation_id=correlation_id,
        webhook=Webhook(url=webhook_url) if webhook_url else None,
    )


class JobChange(DomainModel):
    """One change to a job, applied atomically by a JobRepository.

    Fields left as None are not changed. ``event`` is appended to the job's events.
    """

    status: JobStatus | None = None
    stage: Stage | None = None
    progress: int | None = Field(None, ge=0, le=100)
    last_heartbeat_at: datetime | None = None
    source: SourceInfo | None = None
    clip: ClipInfo | None = None
    transcript: TranscriptInfo | None = None
    artifacts: dict[str, str] | None = None
    error: JobError | None = None
    event: JobEvent | None = None
    # Set by the change that ends a job: its webhook's message, due now.
    webhook: Webhook | None = None


_ALLOWED_TRANSITIONS = {
    JobStatus.QUEUED: {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED},
    JobStatus.RUNNING: {JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED},
}


def apply_change(job: Job, change: JobChange, now: datetime) -> Job:
    """The job after ``change``.

    Raises:
        JobFinishedError: the job has already ended (succeeded, failed, cancelled or deleted);
            an ended job never changes but for its webhook record and its deletion.
    """
    if job.status.is_terminal:
        raise JobFinishedError(f"job {job.id} already {job.status.value}")
    target = change.status or job.status
    if target not in _ALLOWED_TRANSITIONS[job.status]:
        raise JobFinishedError(f"job {job.id} cannot go from {job.status.value} to {target.value}")
    updates = {
        name: value
        for name, value in change.model_dump(exclude={"event"}, exclude_none=True).items()
    }
    # model_dump turned nested models into dicts; take the originals back.
    for name in ("source", "clip", "transcript", "error", "webhook"):
        if getattr(change, name) is not None:
            updates[name] = getattr(change, name)
    updates["updated_at"] = now
    if change.event is not None:
        updates["events"] = (*job.events, change.event)
    return job.model_copy(update=updates)


def with_webhook(job: Job, webhook: Webhook) -> Job:
    """A finished job with its webhook record replaced: the one part of a finished job that changes.

    ``updated_at`` stays as it is, so the job, and the event body made from it, read
    the same on every attempt.

    Each write must move the record on: a newer round (a redelivery), or more attempts
    in the same one. So an attempt in flight when a redelivery began cannot undo it,
    and of two attempts of one round made at once (a message received twice) the
    first one recorded stands.

    Raises:
        JobNotReadyError: the job is still running (its webhook waits for its end).
        WebhookSupersededError: the stored record has moved on as far as ``webhook`` or further,
            or was withdrawn when the job was deleted.
    """
    if not job.status.is_terminal:
        raise JobNotReadyError(f"job {job.id} is {job.status.value}; its webhook is sent when it ends")
    stored = job.webhook
    if stored is not None and stored.state is WebhookState.WITHDRAWN:
        raise WebhookSupersededError(f"job {job.id} was deleted; its webhook was withdrawn")
    if stored is not None and (webhook.round, webhook.attempt_count) <= (stored.round, stored.attempt_count):
        raise WebhookSupersededError(
            f"job {job.id}'s webhook is at round {stored.round}, attempt {stored.attempt_count}, "
            f"beyond round {webhook.round}, attempt {webhook.attempt_count}"
        )
    return job.model_copy(update={"webhook": webhook})


def deleted(job: Job, now: datetime) -> Job:
    """A job that ended, with its artifacts gone: status ``deleted``, no artifact keys, and an event that says so.

    A message still waiting to be sent is withdrawn: it would describe artifacts
    that no longer exist. A cancelled job has no artifacts, and stays as it is;
    so does a job deleted already.

    Raises:
        JobNotReadyError: the job is still queued or running (it is cancelled, not deleted).
    """
    if not job.status.is_terminal:
        raise JobNotReadyError(f"job {job.id} is {job.status.value}; cancel it instead")
    if job.status in (JobStatus.CANCELLED, JobStatus.DELETED):
        return job
    webhook = job.webhook.withdrawn() if job.webhook is not None and job.webhook.is_due else job.webhook
    return job.model_copy(
        update={
            "status": JobStatus.DELETED,
            "artifacts": {},
            "updated_at": now,
            "events": (*job.events, job.event("jobDeleted", job.stage, now)),
            "webhook": webhook,
        }
    )
