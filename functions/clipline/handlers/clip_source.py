"""Pipeline task: cut the clip and store it."""

from ..domain.use_cases import clip_source
from ._step import step_handler

lambda_handler = step_handler(clip_source, stage="clip")
