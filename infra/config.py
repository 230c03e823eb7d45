"""A stage's settings, read from CDK context (cdk.json or ``-c``), never from the environment.

cdk.json holds ``"stage"`` (the one to deploy) and ``"stages"``, one object of
overrides per stage name; every field left out keeps the default below. The
pipeline timeouts default to the runtime's own defaults in ``clipline.settings``
so the state machine, the functions and the code agree unless a stage says otherwise.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import aws_cdk.aws_logs as logs
from constructs import Node
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clipline.api.routes import API_ROUTES
from clipline.settings import Settings
from clipline.workflow import AUDIO_EXTRACTION_TIMEOUT_SECONDS, LAMBDA_SIZES, lambda_timeout_seconds

STAGE_CONTEXT_KEY = "stage"
STAGES_CONTEXT_KEY = "stages"
DEFAULT_STAGE = "dev"
LAMBDA_MAX_TIMEOUT_SECONDS = 900
# API Gateway ends a Lambda integration after 29 s: a function that runs longer answers nobody.
API_INTEGRATION_TIMEOUT_SECONDS = 29
DEFAULT_USAGE_PLAN = "default"
# Runtime settings a stage may not pass through `settings`: the stack sets these itself from its own
# resources and keys above, local mode alone reads the others, and usage plans replace the key limits.
STACK_SET_SETTINGS = frozenset({
    "mode", "jobs_table", "artifacts_bucket", "state_machine_arn", "asr_provider", "retention_days",
    "job_timeout_seconds", "probe_timeout_seconds", "clip_timeout_seconds", "asr_timeout_seconds",
    "asr_heartbeat_seconds", "job_creations_per_ip_per_minute", "ffmpeg", "fonts_dir",
    "openai_api_key", "openai_api_key_secret", "openai_base_url", "openai_model",
    "webhook_queue_url", "webhook_dead_letter_queue_url", "webhook_secrets_prefix",
})  # fmt: skip
NOT_IN_AWS_SETTINGS = frozenset(
    name
    for name, field in Settings.model_fields.items()
    if (field.json_schema_extra or {}).get("group") == "Local mode" or name.startswith("key_") or name in ("asr_workers", "webhook_workers")
)


def _runtime_default(field: str) -> Any:
    return Settings.model_fields[field].default


class _Strict(BaseModel):
    # A misspelt key in cdk.json must fail the synth, not silently keep a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class UsagePlanConfig(_Strict):
    """One API Gateway usage plan: a steady rate and burst per key, and a quota per period."""

    rate_limit: float = Field(gt=0, description="Requests per second per API key.")
    burst_limit: int = Field(gt=0, description="Requests an API key may make at once.")
    quota_limit: int = Field(gt=0, description="Requests per quota period per API key.")
    quota_period: Literal["DAY", "WEEK", "MONTH"] = "DAY"


class FunctionSizeOverride(_Strict):
    """A stage's change to one row of ``clipline.workflow.LAMBDA_SIZES``."""

    memory_mb: int | None = Field(None, ge=128, le=10240)
    timeout_seconds: int | None = Field(None, ge=1, le=LAMBDA_MAX_TIMEOUT_SECONDS)
    ephemeral_storage_mb: int | None = Field(None, ge=512, le=10240)


class StageConfig(_Strict):
    stage: str = Field(DEFAULT_STAGE, pattern=r"^[a-z][a-z0-9-]{0,15}$")
    # Jobs, transcripts and the records that point at them.
    retention_days: float = Field(_runtime_default("retention_days"), gt=0)
    # S3 lifecycle is only the backstop behind TTL + the stream handler, so it waits a little longer.
    artifact_expiry_margin_days: int = Field(1, ge=1)
    removal_policy: Literal["retain", "destroy"] = "retain"
    log_retention: str = "ONE_MONTH"

    asr_provider: Literal["transcribe", "openai", "whisper"] = "transcribe"
    # Transcriptions running at once; SQS event source mappings accept 2 to 1000. A request that waits in
    # the queue longer than asr_heartbeat_seconds times out (see docs/deploy.md for sizing).
    asr_max_concurrency: int = Field(5, ge=2, le=1000)
    # Deliveries of one ASR request before it goes to the dead-letter queue.
    asr_max_receive_count: int = Field(3, ge=1)
    openai_secret_name: str = "clipline/openai-api-key"
    openai_base_url: str = _runtime_default("openai_base_url")
    openai_model: str = _runtime_default("openai_model")

    job_timeout_seconds: int = Field(_runtime_default("job_timeout_seconds"), gt=0)
    probe_timeout_seconds: int = Field(_runtime_default("probe_timeout_seconds"), gt=0)
    clip_timeout_seconds: int = Field(_runtime_default("clip_timeout_seconds"), gt=0)
    asr_timeout_seconds: int = Field(_runtime_default("asr_timeout_seconds"), gt=0)
    asr_heartbeat_seconds: int = Field(_runtime_default("asr_heartbeat_seconds"), ge=1)

    # The stage's own ceiling, above every usage plan.
    api_rate_limit: float = Field(100, gt=0)
    api_burst_limit: int = Field(200, gt=0)
    usage_plans: dict[str, UsagePlanConfig] = Field(
        default_factory=lambda: {
            DEFAULT_USAGE_PLAN: UsagePlanConfig(rate_limit=10, burst_limit=20, quota_limit=10000, quota_period="DAY"),
            "pro": UsagePlanConfig(rate_limit=50, burst_limit=100, quota_limit=200000, quota_period="DAY"),
        }
    )
    job_creations_per_ip_per_minute: int = Field(_runtime_default("job_creations_per_ip_per_minute"), gt=0)
    # Webhook attempts in flight at once, each one POST of at most webhook_timeout_seconds.
    webhook_max_concurrency: int = Field(10, ge=2, le=1000)

    functions: dict[str, FunctionSizeOverride] = Field(default_factory=dict)
    # Other runtime settings every function gets, by clipline.settings field name: the source allowlist,
    # clip and source limits, signed link lifetime, ... Checked against Settings at synth.
    settings: dict[str, str | int | float | bool] = Field(default_factory=dict)
    alarm_email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

    @field_validator("log_retention")
    @classmethod
    def _known_retention(cls, value: str) -> str:
        if value not in logs.RetentionDays.__members__:
            raise ValueError(f"log_retention must be one of {sorted(logs.RetentionDays.__members__)}")
        return value

    @field_validator("usage_plans")
    @classmethod
    def _has_default_plan(cls, plans: dict[str, UsagePlanConfig]) -> dict[str, UsagePlanConfig]:
        if DEFAULT_USAGE_PLAN not in plans:
            raise ValueError(f"usage_plans needs a {DEFAULT_USAGE_PLAN!r} plan, the one new keys are attached to")
        bad = [name for name in plans if not name.isidentifier()]
        if bad:
            raise ValueError(f"usage plan names must be identifiers (they name stack outputs): {bad}")
        return plans

    @field_validator("settings")
    @classmethod
    def _valid_runtime_settings(cls, values: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(values) - set(Settings.model_fields))
        if unknown:
            raise ValueError(f"settings: unknown {unknown}; see the configuration reference in README.md")
        owned = sorted(set(values) & (STACK_SET_SETTINGS | NOT_IN_AWS_SETTINGS))
        if owned:
            raise ValueError(f"settings: {owned} are set by the stack's own keys, or mean nothing in AWS")
        # The values the functions will read, validated as they will be read (ranges, types, enums).
        Settings.model_validate(values)
        return values

    @field_validator("functions")
    @classmethod
    def _known_functions(cls, overrides: dict[str, FunctionSizeOverride]) -> dict[str, FunctionSizeOverride]:
        unknown = sorted(set(overrides) - set(LAMBDA_SIZES))
        if unknown:
            raise ValueError(f"functions: unknown {unknown}; known: {sorted(LAMBDA_SIZES)}")
        for name, override in overrides.items():
            if override.timeout_seconds is not None and LAMBDA_SIZES[name].timeout_placeholder is not None:
                # A task's Lambda timeout is its state's timeout; two knobs for one limit would drift.
                raise ValueError(
                    f"functions.{name}.timeout_seconds: this task's timeout follows its state's; "
                    "set the matching *_timeout_seconds instead"
                )
        return overrides

    @model_validator(mode="after")
    def _fits_lambda(self) -> StageConfig:
        for name in LAMBDA_SIZES:
            seconds = self.timeout_seconds_of(name)
            if seconds > LAMBDA_MAX_TIMEOUT_SECONDS:
                raise ValueError(f"{name} would need a {seconds} s timeout; Lambda allows {LAMBDA_MAX_TIMEOUT_SECONDS}")
        api_handlers = {route.handler for route in API_ROUTES}
        for name, size in LAMBDA_SIZES.items():
            seconds = self.timeout_seconds_of(name)
            if size.handler in api_handlers and seconds > API_INTEGRATION_TIMEOUT_SECONDS:
                raise ValueError(
                    f"functions.{name}.timeout_seconds ({seconds}) serves an API route; API Gateway gives up "
                    f"after {API_INTEGRATION_TIMEOUT_SECONDS} s"
                )
        worker = self.timeout_seconds_of("TranscribeClip")
        if self.asr_timeout_seconds + AUDIO_EXTRACTION_TIMEOUT_SECONDS >= worker:
            raise ValueError(
                f"asr_timeout_seconds ({self.asr_timeout_seconds}) plus audio extraction must fit in the "
                f"ASR worker's {worker} s timeout"
            )
        return self

    def memory_mb_of(self, name: str) -> int:
        override = self.functions.get(name)
        return (override and override.memory_mb) or LAMBDA_SIZES[name].memory_mb

    def timeout_seconds_of(self, name: str) -> int:
        override = self.functions.get(name)
        return (override and override.timeout_seconds) or lambda_timeout_seconds(LAMBDA_SIZES[name], self)

    def ephemeral_storage_mb_of(self, name: str) -> int:
        override = self.functions.get(name)
        return (override and override.ephemeral_storage_mb) or LAMBDA_SIZES[name].ephemeral_storage_mb

    @property
    def artifact_expiry_days(self) -> int:
        return math.ceil(self.retention_days) + self.artifact_expiry_margin_days

    @property
    def name_prefix(self) -> str:
        return f"clipline-{self.stage}"

    @classmethod
    def from_context(cls, node: Node, stage: str | None = None) -> StageConfig:
        """``stage`` (by default the one the ``stage`` context key names), with its overrides from ``stages``.

        Raises:
            ValueError: the stage is not in ``stages``, or its settings are invalid.
        """
        stage = stage or node.try_get_context(STAGE_CONTEXT_KEY) or DEFAULT_STAGE
        stages = node.try_get_context(STAGES_CONTEXT_KEY) or {}
        if stage not in stages:
            raise ValueError(f"stage {stage!r} is not in the {STAGES_CONTEXT_KEY!r} context; known: {sorted(stages)}")
        return cls.model_validate({**stages[stage], "stage": stage})
