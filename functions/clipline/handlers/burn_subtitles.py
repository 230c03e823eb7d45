"""Pipeline task: burn the job's subtitles into its clip and store it."""

from ..domain.burn_in import burn_subtitles
from ._step import step_handler

lambda_handler = step_handler(burn_subtitles, stage="burnIn")
