"""Pipeline task: check the artifacts and mark the job succeeded."""

from ..domain.use_cases import finalize_job
from ._step import step_handler

lambda_handler = step_handler(finalize_job, stage="finalize")
