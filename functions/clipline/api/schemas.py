"""Request and response bodies of the HTTP API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..domain.jobs import Job
from ..domain.use_cases import JobResult


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class CreateJobBody(_Wire):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    source_url: str = Field(description="http(s) URL of the source media", examples=["https://example.com/talk.mp4"])
    start: float | str = Field(description="Clip start: seconds, or HH:MM:SS.mmm", examples=["00:01:00"])
    end: float | str = Field(description="Clip end: seconds, or HH:MM:SS.mmm", examples=[70.5])


class JobEventView(_Wire):
    at: datetime
    type: str
    stage: str
    code: str | None = None
    message: str | None = None


class JobErrorView(_Wire):
    code: str
    message: str


class ClipRequestView(_Wire):
    source_url: str
    start_seconds: float
    end_seconds: float


class SourceView(_Wire):
    duration_seconds: float
    has_video: bool
    has_audio: bool
    video_codec: str | None = None
    audio_codec: str | None = None
    frame_rate: float | None = None


class ClipView(_Wire):
    duration_seconds: float
    size_bytes: int
    method: str
    fallback_reason: str | None = None


class JobLinks(_Wire):
    self_: str = Field(alias="self")
    result: str


class JobView(_Wire):
    id: str
    status: str
    stage: str
    progress: int
    request: ClipRequestView
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    last_heartbeat_at: datetime | None = None
    source: SourceView | None = None
    clip: ClipView | None = None
    result_keys: dict[str, str] = Field(description="artifact name -> storage key")
    error: JobErrorView | None = None
    events: list[JobEventView] = Field(description="The most recent events, oldest first")
    links: JobLinks

    @classmethod
    def of(cls, job: Job) -> "JobView":
        return cls(
            id=job.id,
            status=job.status.value,
            stage=job.stage.value,
            progress=job.progress,
            request=ClipRequestView.model_validate(job.request.model_dump()),
            created_at=job.created_at,
            updated_at=job.updated_at,
            expires_at=job.expires_at,
            last_heartbeat_at=job.last_heartbeat_at,
            source=SourceView.model_validate(job.source.model_dump()) if job.source else None,
            clip=ClipView.model_validate(job.clip.model_dump()) if job.clip else None,
            result_keys=dict(job.artifacts),
            error=JobErrorView.model_validate(job.error.model_dump()) if job.error else None,
            events=[JobEventView.model_validate(event.model_dump()) for event in job.recent_events],
            links=JobLinks(self_=f"/api/jobs/{job.id}", result=f"/api/jobs/{job.id}/result"),
        )


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


def to_wire(model: BaseModel) -> dict:
    return model.model_dump(mode="json", by_alias=True)
