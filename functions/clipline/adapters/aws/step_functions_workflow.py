"""Starts the pipeline on Step Functions (in AWS, or moto's engine in local mode)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...domain.errors import ServiceUnavailableError
from ...domain.jobs import Job
from ...workflow.payloads import PipelineInput

# What a stopped execution's history names as its error.
CANCELLED_ERROR = "JobCancelled"


class StepFunctionsWorkflow:
    """WorkflowStarter on Step Functions. The execution is named after the job, which
    makes starting idempotent and lets the console find a job's execution by id.

    Stopping ends the execution only: a task invocation in flight runs on (Step Functions
    cannot reach into Lambda) until it finds its job ended.
    """

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._state_machine_arn = state_machine_arn

    def start(self, job: Job) -> str:
        try:
            response = self._client.start_execution(
                stateMachineArn=self._state_machine_arn,
                name=job.id,
                input=json.dumps(PipelineInput.of(job).dump()),
            )
            return response["executionArn"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ExecutionAlreadyExists":
                return self.execution_arn(job.id)
            raise ServiceUnavailableError(f"could not start the pipeline: {error}") from error
        except BotoCoreError as error:
            raise ServiceUnavailableError(f"could not start the pipeline: {error}") from error

    def stop(self, job_id: str, cause: str) -> None:
        # The error names why in the execution's history, as a failure's class name would.
        try:
            self._client.stop_execution(executionArn=self.execution_arn(job_id), error=CANCELLED_ERROR, cause=cause)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ExecutionDoesNotExist":
                return
            raise ServiceUnavailableError(f"could not stop the pipeline: {error}") from error
        except BotoCoreError as error:
            raise ServiceUnavailableError(f"could not stop the pipeline: {error}") from error

    def execution_arn(self, job_id: str) -> str:
        # Execution ARNs are the state machine ARN with the execution name appended.
        return self._state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
