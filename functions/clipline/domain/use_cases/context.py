"""What every use case works with: the ports (Services), the service's limits, where artifacts are kept,
and the owner-checked read of a job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from .. import errors
from ..jobs import Job
from ..ports import (
    ArtifactStore,
    AsrJobRepository,
    AudioExtractor,
    Clock,
    JobRepository,
    MediaClipper,
    MediaProber,
    SourceGuard,
    SubtitleBurner,
    TaskCallback,
    Telemetry,
    Transcriber,
    UploadRepository,
    WebhookQueue,
    WebhookSecrets,
    WebhookSender,
    WorkflowStarter,
)
from ..webhooks import DEFAULT_WEBHOOK_SCHEDULE, RetrySchedule

CLIP_ARTIFACT = "clip"
BURNED_CLIP_ARTIFACT = "burned"
# The user's own subtitles, stored with the job when it is created.
SUBTITLES_FILE = "subtitles.srt"
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
    # Waits between webhook attempts; the spec's schedule, about 27 hours in all.
    webhook_schedule: RetrySchedule = DEFAULT_WEBHOOK_SCHEDULE
    # Plain-http webhook URLs, as for private sources: local development and tests only.
    allow_http_webhooks: bool = False
    # Uploads: the largest declared size, the signed link's lifetime, and how long the upload is kept.
    max_upload_bytes: int = 20 * 1024**3
    upload_link_ttl: timedelta = timedelta(minutes=15)
    upload_retention: timedelta = timedelta(hours=24)


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
    # Webhooks: the steps that end a job announce its message; the delivery worker sends it.
    webhook_queue: WebhookQueue | None = None
    webhook_sender: WebhookSender | None = None
    webhook_secrets: WebhookSecrets | None = None
    # Uploads: the API's upload route and job creation read them.
    uploads: UploadRepository | None = None
    # The origins whose pages may call the API from a browser (CORS): the console's, in AWS.
    browser_origins: frozenset[str] = frozenset()

def content_type_of(path: Path) -> str:
    """The media type of a clip file: ``clip.m4a`` for audio-only sources, else MP4 video."""
    return "audio/mp4" if path.suffix == ".m4a" else "video/mp4"


def artifact_key(job_id: str, file_name: str) -> str:
    return f"{artifact_prefix(job_id)}{file_name}"


def artifact_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def get_job(services: Services, job_id: str, owner: str) -> Job:
    """The job, if ``owner`` created it. Another key's job is reported as missing.

    Raises:
        JobNotFoundError.
    """
    job = services.jobs.get(job_id)
    if job.owner != owner:
        raise errors.JobNotFoundError(f"job {job_id} not found")
    return job
