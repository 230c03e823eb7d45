"""The pipeline definition and the table of its tasks.

``pipeline.asl.json`` is the single source of truth for step order, retries,
catches and timeouts. It holds ``${Name}`` placeholders that CloudFormation's
DefinitionSubstitutions fill in AWS and ``render_definition`` fills, the same
textual way, in local mode.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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
# The webhook queue's consumer.
WEBHOOK_DELIVERY_HANDLER = "clipline.handlers.deliver_webhook"
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


@dataclass(frozen=True)
class LambdaSize:
    """How one Lambda is sized in AWS. The stack reads this table; cdk.json context may override it per stage.

    A task's timeout is its state's ``TimeoutSeconds`` placeholder, so the Lambda
    is never cut off before the state machine gives up on it; other functions
    have a fixed timeout.
    """

    handler: str
    memory_mb: int
    timeout_seconds: int | None = None
    timeout_placeholder: str | None = None
    ephemeral_storage_mb: int = 512
    # Runs ffmpeg, so it gets the ffmpeg layer (bin/ffmpeg, the subtitle font, fontconfig).
    uses_ffmpeg: bool = False


# Lambda's CPU share grows with memory (one full vCPU at 1769 MB), and ffmpeg's
# encodes are CPU-bound; the smart cut keeps a local copy of the range on /tmp.
LAMBDA_SIZES: dict[str, LambdaSize] = {
    # API Gateway ends an integration after 29 s; an API function must answer before that.
    "CreateJob": LambdaSize("clipline.handlers.create_job", 512, timeout_seconds=29),
    "GetJob": LambdaSize("clipline.handlers.get_job", 256, timeout_seconds=10),
    "ListJobs": LambdaSize("clipline.handlers.list_jobs", 256, timeout_seconds=10),
    # Records the upload and presigns its PUT: no file passes through it.
    "CreateUpload": LambdaSize("clipline.handlers.create_upload", 256, timeout_seconds=10),
    # Stops the execution and removes the job's files: a job's few artifacts in a few calls.
    "DeleteJob": LambdaSize("clipline.handlers.delete_job", 256, timeout_seconds=29),
    "GetJobResult": LambdaSize("clipline.handlers.get_job_result", 256, timeout_seconds=10),
    "ProbeSource": LambdaSize(
        TASK_HANDLERS["ProbeSourceFunctionArn"], 1024, timeout_placeholder="ProbeTimeoutSeconds", uses_ffmpeg=True
    ),
    "ClipSource": LambdaSize(
        TASK_HANDLERS["ClipSourceFunctionArn"], 3008, timeout_placeholder="ClipTimeoutSeconds",
        ephemeral_storage_mb=4096, uses_ffmpeg=True,
    ),  # fmt: skip
    "BurnIn": LambdaSize(
        TASK_HANDLERS["BurnInFunctionArn"], 3008, timeout_placeholder="BurnInTimeoutSeconds",
        ephemeral_storage_mb=2048, uses_ffmpeg=True,
    ),  # fmt: skip
    "FinalizeJob": LambdaSize(TASK_HANDLERS["FinalizeJobFunctionArn"], 256, timeout_seconds=60),
    "FailJob": LambdaSize(TASK_HANDLERS["FailJobFunctionArn"], 256, timeout_seconds=60),
    # The whole transcription (fetch, audio extraction, provider, files) within Lambda's 15-minute limit.
    "TranscribeClip": LambdaSize(
        ASR_WORKER_HANDLER, 3008, timeout_seconds=900, ephemeral_storage_mb=2048, uses_ffmpeg=True
    ),
    "RecordExecutionEnd": LambdaSize("clipline.handlers.record_execution_end", 256, timeout_seconds=30),
    "RedeliverWebhook": LambdaSize("clipline.handlers.redeliver_webhook", 256, timeout_seconds=10),
    # One message per invocation; its POST is bounded by webhook_timeout_seconds (at most 30 s).
    "DeliverWebhook": LambdaSize(WEBHOOK_DELIVERY_HANDLER, 256, timeout_seconds=60),
    "RemoveExpiredArtifacts": LambdaSize("clipline.handlers.remove_expired_artifacts", 512, timeout_seconds=120),
}


def lambda_timeout_seconds(size: LambdaSize, settings: object) -> int:
    """The function's timeout in seconds: fixed, or the same as its state's (work limit plus margin)."""
    if size.timeout_placeholder is not None:
        return int(timeout_substitutions(settings)[size.timeout_placeholder])
    assert size.timeout_seconds is not None
    return size.timeout_seconds
