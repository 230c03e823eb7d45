"""The pipeline definition and the table of its tasks.

``pipeline.asl.json`` is the single source of truth for step order, retries,
catches and timeouts. It holds ``${Name}`` placeholders that CloudFormation's
DefinitionSubstitutions fill in AWS and ``render_definition`` fills, the same
textual way, in local mode.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Mapping

# Placeholder in pipeline.asl.json -> the handler module that serves it.
TASK_HANDLERS: dict[str, str] = {
    "ProbeSourceFunctionArn": "clipline.handlers.probe_source",
    "ClipSourceFunctionArn": "clipline.handlers.clip_source",
    "BurnInFunctionArn": "clipline.handlers.burn_subtitles",
    "FinalizeJobFunctionArn": "clipline.handlers.finalize_job",
    "FailJobFunctionArn": "clipline.handlers.fail_job",
}
# The ASR queue's URL; the worker behind it is an SQS consumer, not a task resource.
ASR_QUEUE_PLACEHOLDER = "AsrQueueUrl"
ASR_WORKER_HANDLER = "clipline.handlers.transcribe_clip"
# Numeric placeholders and the settings that fill them.
TIMEOUT_SETTINGS: dict[str, str] = {
    "JobTimeoutSeconds": "job_timeout_seconds",
    "ProbeTimeoutSeconds": "probe_timeout_seconds",
    "ClipTimeoutSeconds": "clip_timeout_seconds",
    # Burning in is one encode of the clip, bounded like cutting it.
    "BurnInTimeoutSeconds": "clip_timeout_seconds",
    "AsrTimeoutSeconds": "asr_timeout_seconds",
    "AsrHeartbeatSeconds": "asr_heartbeat_seconds",
}
# A task's state timeout is its own work limit plus room to store and record the result,
# so the work's own limit fires first and reports the precise error.
TASK_TIMEOUT_MARGIN_SECONDS = 60
# Before the provider's own limit starts, the ASR worker downloads the clip and
# extracts its audio; extraction gets this long, and the Transcribe state allows for it.
AUDIO_EXTRACTION_TIMEOUT_SECONDS = 60
_MARGINS = {
    "ProbeTimeoutSeconds": TASK_TIMEOUT_MARGIN_SECONDS,
    "ClipTimeoutSeconds": TASK_TIMEOUT_MARGIN_SECONDS,
    "BurnInTimeoutSeconds": TASK_TIMEOUT_MARGIN_SECONDS,
    "AsrTimeoutSeconds": AUDIO_EXTRACTION_TIMEOUT_SECONDS + TASK_TIMEOUT_MARGIN_SECONDS,
}

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def definition_template() -> str:
    return resources.files(__package__).joinpath("pipeline.asl.json").read_text()


def placeholders() -> set[str]:
    return set(_PLACEHOLDER.findall(definition_template()))


def timeout_substitutions(settings: object) -> dict[str, str]:
    """The numeric placeholders' values from settings (task timeouts include the margin)."""
    values = {}
    for placeholder, field in TIMEOUT_SETTINGS.items():
        seconds = int(getattr(settings, field)) + _MARGINS.get(placeholder, 0)
        values[placeholder] = str(seconds)
    return values


def render_definition(substitutions: Mapping[str, str]) -> str:
    """The definition with every placeholder filled, checked to be valid JSON.

    Raises:
        KeyError: a placeholder has no value.
    """
    missing = placeholders() - set(substitutions)
    if missing:
        raise KeyError(f"no value for placeholders: {sorted(missing)}")
    rendered = _PLACEHOLDER.sub(lambda match: substitutions[match.group(1)], definition_template())
    json.loads(rendered)
    return rendered
