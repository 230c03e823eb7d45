"""What the state machine passes to each task and gets back: small, keys not media."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..domain.jobs import Job


class _Payload(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


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

    @classmethod
    def of(cls, job: Job) -> "StepOutput":
        return cls(jobId=job.id, status=job.status.value, stage=job.stage.value, progress=job.progress)

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
