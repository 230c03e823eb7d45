"""The pipeline on the local engine, whose steps run in this process: stopping a job also ends its work here."""

from __future__ import annotations

from ..adapters.aws.step_functions_workflow import StepFunctionsWorkflow
from ..domain.jobs import Job
from ..media import running_work


class InProcessWorkflow:
    """WorkflowStarter for local mode: Step Functions on moto's engine, plus the work its steps run here.

    Stopping the execution alone would leave the running step's ffmpeg to finish (the
    engine cannot reach into a task, as Step Functions cannot reach into Lambda); here
    the step is ours, so its children are killed and its transcription stops at once.
    """

    def __init__(self, workflow: StepFunctionsWorkflow) -> None:
        self._workflow = workflow

    def start(self, job: Job) -> str:
        return self._workflow.start(job)

    def stop(self, job_id: str, cause: str) -> None:
        # The execution first, so no next state starts once the running one is ended.
        try:
            self._workflow.stop(job_id, cause)
        finally:
            running_work.stop(job_id)

    def execution_arn(self, job_id: str) -> str:
        return self._workflow.execution_arn(job_id)
