"""What the state machine passes to each task and gets back: small, keys not media."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..domain.jobs import Job


class _Payload(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class PipelineOptions(_Payload):
    """What the state machine's Choice states branch on."""

    transcribe: bool
    language: str | None
    burn_subtitles: bool = Field(alias="burnSubtitles")


class PipelineInput(_Payload):
    """The execution input: the job and the options that pick its path."""

    job_id: str = Field(alias="jobId")
    correlation_id: str = Field(alias="correlationId")
    options: PipelineOptions

    @classmethod
    def of(cls, job: Job) -> "PipelineInput":
        return cls(
            jobId=job.id,
            correlationId=job.correlation_id,
            options=PipelineOptions(
                transcribe=job.request.transcribe,
                language=job.request.language,
                burnSubtitles=job.request.burn_subtitles,
            ),
        )

    def dump(self) -> dict:
        return self.model_dump(by_alias=True)


class StepInput(_Payload):
    job_id: str = Field(alias="jobId")
    correlation_id: str = Field(alias="correlationId")


class FailureInput(StepInput):
    error: str = Field(description="The failed state's error name: an error class name or States.*")
    cause: str | None = None


class StepOutput(_Payload):
    job_id: str = Field(alias="jobId")
    status: str
    stage: str
    progress: int
    result_keys: dict[str, str] = Field(alias="resultKeys", description="artifact name -> storage key")

    @classmethod
    def of(cls, job: Job) -> "StepOutput":
        return cls(
            jobId=job.id,
            status=job.status.value,
            stage=job.stage.value,
            progress=job.progress,
            resultKeys=dict(job.artifacts),
        )

    def dump(self) -> dict:
        return self.model_dump(by_alias=True)


class AsrRequest(_Payload):
    """The Transcribe state's message on the ASR queue."""

    job_id: str = Field(alias="jobId")
    correlation_id: str = Field(alias="correlationId")
    clip_key: str = Field(alias="clipKey")
    language: str | None = None
    task_token: str = Field(alias="taskToken", description="SendTaskSuccess/Failure/Heartbeat take this")


class AsrOutput(_Payload):
    """What the worker hands back with SendTaskSuccess; becomes the Transcribe state's result."""

    asr_job_id: str = Field(alias="asrJobId")
    cache_hit: bool = Field(alias="cacheHit")
    language: str
    result_keys: dict[str, str] = Field(alias="resultKeys")

    def dump(self) -> dict:
        return self.model_dump(by_alias=True)


class ExecutionEndDetail(_Payload):
    """The part of a "Step Functions Execution Status Change" EventBridge event we use."""

    name: str = Field(description="The execution name, which is the job id")
    status: str
    error: str | None = None
    cause: str | None = None


class ExecutionEndEvent(_Payload):
    detail: ExecutionEndDetail
