"""Request and response bodies of the HTTP API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ..domain.jobs import (
    ClipAccuracy,
    ClipInfo,
    ClipRequest,
    Job,
    JobError,
    JobEvent,
    JobStatus,
    SourceInfo,
    Stage,
    SubtitleStyle,
    TranscriptInfo,
)
from ..domain.use_cases import JobListing, JobResult, UploadLink
from ..domain.webhooks import RECENT_ATTEMPTS, Webhook, WebhookAttempt, WebhookState

# A timecode is short; anything longer is not one, and is refused before parsing.
Timecode = Annotated[str, StringConstraints(max_length=32)]
# Request fields are strict (no "true" for true, no 1.0 for 1, no true for 1 s) so the
# service accepts exactly the bodies its published JSON Schema describes.


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class OwnSubtitles(_Wire):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    srt: str = Field(
        description="SubRip text, at most 256 KiB; validated, and refused with INVALID_SUBTITLES when malformed",
        examples=["1\n00:00:00,500 --> 00:00:02,000\nHello there\n"],
    )


class CreateJobBody(_Wire):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        # The source is a URL or an upload, never both: said in the schema, so API Gateway refuses it too.
        json_schema_extra={"oneOf": [{"required": ["sourceUrl"]}, {"required": ["sourceKey"]}]},
    )

    source_url: str | None = Field(
        None,
        max_length=2048,
        description="http(s) URL of the source media; give this or sourceKey",
        examples=["https://example.com/talk.mp4"],
    )
    source_key: str | None = Field(
        None,
        max_length=200,
        description="The sourceKey of a finished upload of yours (POST /api/uploads), instead of sourceUrl",
        examples=["uploads/6f1c2b3a4d5e4f708192a3b4c5d6e7f8/talk.mp4"],
    )
    start: StrictFloat | Timecode = Field(description="Clip start: seconds, or HH:MM:SS.mmm", examples=["00:01:00"])
    end: StrictFloat | Timecode = Field(description="Clip end: seconds, or HH:MM:SS.mmm", examples=[70.5])
    transcribe: StrictBool = Field(False, description="Also produce transcript.srt, .vtt, .txt and .json")
    language: str | None = Field(
        None,
        pattern=r"^[a-z]{2}$",
        description="ISO 639-1 code of the spoken language; omitted, the provider detects it",
        examples=["en"],
    )
    retention_seconds: StrictInt | None = Field(
        None,
        gt=0,
        description="Keep the job and its artifacts this long; at most the service's retention, which is the default",
        examples=[86400],
    )
    accuracy: ClipAccuracy = Field(
        ClipAccuracy.FRAME,
        description="frame: start and end exactly, within one frame (smart cut); "
        "keyframe: stream copy from the keyframe at or before start, fastest",
    )
    burn_subtitles: StrictBool = Field(
        False,
        description="Also produce clip.burned.mp4 with the subtitles drawn in: the transcript "
        "(transcription is implied) or your own `subtitles`",
    )
    subtitle_style: SubtitleStyle = Field(default_factory=SubtitleStyle, description="How burned-in subtitles look")
    subtitles: OwnSubtitles | None = Field(None, description="Your own subtitles to burn in instead of a transcript")
    webhook_url: str | None = Field(
        None,
        max_length=2048,
        description="POSTed a signed job.succeeded, job.failed or job.cancelled event (Standard Webhooks) when "
        "the job ends; "
        "https, under the same egress policy as sources",
        examples=["https://example.com/hooks/clipline"],
    )


    @model_validator(mode="after")
    def _one_source(self) -> "CreateJobBody":
        given = {"source_url", "source_key"} & self.model_fields_set
        if len(given) != 1:
            raise ValueError("give exactly one of sourceUrl and sourceKey")
        return self


class CreateUploadBody(_Wire):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    file_name: str = Field(
        min_length=1, max_length=255, description="The file's name; its extension is kept in the key", examples=["talk.mp4"]
    )
    content_type: str = Field(
        max_length=100,
        pattern=r"^(audio|video)/[A-Za-z0-9][A-Za-z0-9.+-]*$",
        description="The audio or video media type the PUT must send",
        examples=["video/mp4"],
    )
    size_bytes: StrictInt = Field(gt=0, description="The file's exact size; the PUT must send exactly this many bytes")


class UploadView(_Wire):
    upload_id: str
    url: str = Field(description="Where to PUT the file, once, before expiresAt")
    method: str = Field("PUT", description="Always PUT")
    headers: dict[str, str] = Field(description="Send exactly these headers with the PUT")
    expires_at: datetime = Field(description="When the link expires")
    source_key: str = Field(description="Give this as sourceKey to POST /api/jobs once the PUT succeeded")
    upload_expires_at: datetime = Field(description="When the upload is removed, and jobs can no longer use it")

    @classmethod
    def of(cls, link: UploadLink) -> "UploadView":
        upload = link.upload
        return cls(
            upload_id=upload.id,
            url=link.link.url,
            headers=dict(link.link.headers),
            expires_at=upload.link_expires_at,
            source_key=upload.source_key,
            upload_expires_at=upload.expires_at,
        )


class WebhookView(_Wire):
    url: str
    state: WebhookState = Field(
        description="pending until the job has ended and a receiver answered 2xx (delivered), or until a 410 "
        "or the end of the retry schedule (failed); withdrawn when the job was deleted before its message was taken"
    )
    attempts: list[WebhookAttempt] = Field(description=f"The last {RECENT_ATTEMPTS} attempts, oldest first")

    @classmethod
    def of(cls, webhook: Webhook) -> "WebhookView":
        return cls(url=webhook.url, state=webhook.state, attempts=list(webhook.attempts))


class JobLinks(_Wire):
    self_: str = Field(alias="self")
    result: str


class JobView(_Wire):
    id: str
    status: JobStatus
    stage: Stage
    progress: int
    request: ClipRequest
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    last_heartbeat_at: datetime | None = None
    source: SourceInfo | None = None
    clip: ClipInfo | None = None
    transcript: TranscriptInfo | None = None
    result_keys: dict[str, str] = Field(description="artifact name -> storage key")
    # The same keys one by one, set as each stage stores its artifact.
    result_clip_key: str | None = None
    result_srt_key: str | None = None
    result_vtt_key: str | None = None
    result_txt_key: str | None = None
    result_json_key: str | None = None
    result_burned_key: str | None = None
    error: JobError | None = None
    events: list[JobEvent] = Field(description="The most recent events, oldest first")
    webhook: WebhookView | None = Field(None, description="Where the job's end is announced, and how that went")
    links: JobLinks

    @classmethod
    def of(cls, job: Job) -> "JobView":
        return cls(
            id=job.id,
            status=job.status,
            stage=job.stage,
            progress=job.progress,
            request=job.request,
            created_at=job.created_at,
            updated_at=job.updated_at,
            expires_at=job.expires_at,
            last_heartbeat_at=job.last_heartbeat_at,
            source=job.source,
            clip=job.clip,
            transcript=job.transcript,
            result_keys=dict(job.artifacts),
            **{f"result_{name}_key": key for name, key in job.artifacts.items()},
            error=job.error,
            events=list(job.recent_events),
            webhook=WebhookView.of(job.webhook) if job.webhook else None,
            links=JobLinks(self_=f"/api/jobs/{job.id}", result=f"/api/jobs/{job.id}/result"),
        )


class JobListView(_Wire):
    jobs: list[JobView] = Field(description="Your jobs, newest first")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page. A page may hold fewer than "
        "`limit` jobs and still have a next one."
    )

    @classmethod
    def of(cls, listing: JobListing) -> "JobListView":
        return cls(jobs=[JobView.of(job) for job in listing.jobs], next_cursor=listing.next_cursor)


class ArtifactView(_Wire):
    name: str
    key: str
    url: str
    expires_at: datetime


class ResultView(_Wire):
    job_id: str
    expires_at: datetime = Field(description="When the job and its artifacts expire")
    artifacts: list[ArtifactView]

    @classmethod
    def of(cls, result: JobResult) -> "ResultView":
        return cls(
            job_id=result.job.id,
            expires_at=result.job.expires_at,
            artifacts=[
                ArtifactView(name=link.name, key=link.key, url=link.url, expires_at=link.expires_at)
                for link in result.links
            ],
        )


class ErrorDetail(_Wire):
    code: str = Field(description="A stable error code; docs/api.md lists each one", examples=["INVALID_TIME_RANGE"])
    message: str = Field(description="What went wrong, for people; may change between releases")
    correlation_id: str = Field(description="The request's x-correlation-id, which finds it in the logs")


class ErrorEnvelope(_Wire):
    """The one shape of every error the API returns."""

    error: ErrorDetail


def to_wire(model: BaseModel) -> dict:
    return model.model_dump(mode="json", by_alias=True)


def job_view_document(job: Job) -> dict:
    """The job as GET /api/jobs/{id} shows it, as JSON-ready data: a webhook event's ``data``."""
    return to_wire(JobView.of(job))
