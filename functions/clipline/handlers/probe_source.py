"""Pipeline task: probe the source and check the range fits."""

from ..domain.use_cases import probe_source
from ._step import step_handler

lambda_handler = step_handler(probe_source, stage="probe")
