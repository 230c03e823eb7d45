"""Every setting clipline reads, in one place.

This is the only module that reads the environment. Each field is read from
``CLIPLINE_<FIELD>`` (for example ``CLIPLINE_MAX_CLIP_SECONDS``). The CDK stack
sets the AWS ones on each function; local mode derives the rest from its data dir.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .domain.webhooks import RetrySchedule


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPLINE_", extra="ignore")

    mode: Literal["local", "aws"] = Field(
        "local",
        description="Which adapters to build: `local` (SQLite, a folder, moto's engine) "
        "or `aws` (the stack sets it on each Lambda).",
        json_schema_extra={"group": "Mode"},
    )

    # Limits on what a job may ask for.
    max_clip_seconds: float = Field(
        600.0, gt=0, description="Longest clip a job may ask for.", json_schema_extra={"group": "Job limits"}
    )
    clip_timeout_seconds: int = Field(
        600,
        gt=0,
        description="How long cutting a clip (all its ffmpeg runs together: a smart cut and any fallback) or "
        "burning subtitles in may take before ffmpeg is killed and the job fails with `CLIP_TIMEOUT`.",
        json_schema_extra={"group": "Job limits"},
    )
    probe_timeout_seconds: int = Field(
        60, gt=0, description="How long probing a source may take.", json_schema_extra={"group": "Job limits"}
    )
    job_timeout_seconds: int = Field(
        1800,
        gt=0,
        description="The state machine's global timeout; a job still running then fails with `JOB_TIMEOUT`.",
        json_schema_extra={"group": "Job limits"},
    )
    retention_days: float = Field(
        7.0,
        gt=0,
        description="How long jobs and their artifacts are kept; a job may ask for less (`retentionSeconds`).",
        json_schema_extra={"group": "Job limits"},
    )
    signed_url_ttl_seconds: int = Field(
        3600,
        gt=0,
        le=7 * 24 * 3600,
        description="Lifetime of a signed artifact link, at most 7 days; a link never outlives its job.",
        json_schema_extra={"group": "Job limits"},
    )
    upload_link_ttl_seconds: int = Field(
        900,
        gt=0,
        le=7 * 24 * 3600,
        description="Lifetime of the signed PUT link `POST /api/uploads` hands out, at most 7 days.",
        json_schema_extra={"group": "Job limits"},
    )
    upload_retention_hours: float = Field(
        24,
        gt=0,
        description="How long an upload is kept for jobs to clip from, from when its link was made; then it is removed.",
        json_schema_extra={"group": "Job limits"},
    )

    # Which sources may be fetched. The full SSRF policy builds on these.
    source_allowlist: str = Field(
        "",
        description="Comma-separated hosts (or `*.example.com` patterns) sources must come from; "
        "empty allows any public host.",
        json_schema_extra={"group": "Sources"},
    )
    allow_private_sources: bool = Field(
        False,
        description="Allow loopback and private-network sources, such as the sample `clipline sample-media` serves. "
        "Only for tests and the demo.",
        json_schema_extra={"group": "Sources"},
    )

    source_ports: str = Field(
        "80,443", description="Comma-separated ports a source URL may name.", json_schema_extra={"group": "Sources"}
    )
    max_source_bytes: int = Field(
        20 * 1024**3,
        gt=0,
        description="Largest source (by Content-Length, or bytes read) ffmpeg may fetch from; "
        "a larger one fails the job with `SOURCE_TOO_LARGE`.",
        json_schema_extra={"group": "Sources", "default_text": "20 GiB (`21474836480`)"},
    )
    max_source_seconds: float = Field(
        6 * 3600,
        gt=0,
        description="Longest source duration accepted; a longer one fails the job with `SOURCE_TOO_LARGE`.",
        json_schema_extra={"group": "Sources", "default_text": "6 h (`21600`)"},
    )
    first_byte_timeout_seconds: float = Field(
        15,
        gt=0,
        description="Longest wait for a source's first byte (and for any later read).",
        json_schema_extra={"group": "Sources"},
    )
    max_redirects: int = Field(
        3,
        ge=0,
        le=10,
        description="Redirects a source fetch may follow; each is checked again.",
        json_schema_extra={"group": "Sources"},
    )

    # Usage plans (local mode reproduces API Gateway's): the plan a new key gets unless it names its own.
    key_rate_per_second: float = Field(
        10,
        gt=0,
        description="Local mode: steady requests per second per API key; "
        "`clipline keys create --rate` sets a key's own.",
        json_schema_extra={"group": "Rate limits and quotas"},
    )
    key_burst: int = Field(
        20,
        gt=0,
        description="Local mode: requests an API key may make at once (the token bucket's size); "
        "`clipline keys create --burst` sets a key's own.",
        json_schema_extra={"group": "Rate limits and quotas"},
    )
    key_quota: int = Field(
        10000,
        gt=0,
        description="Local mode: requests per quota period per API key; "
        "`clipline keys create --quota` sets a key's own.",
        json_schema_extra={"group": "Rate limits and quotas"},
    )
    key_quota_period: Literal["day", "week", "month"] = Field(
        "day",
        description="Local mode: the quota period, `day`, `week` or `month`, a calendar period in UTC; "
        "`clipline keys create --period` sets a key's own.",
        json_schema_extra={"group": "Rate limits and quotas"},
    )
    job_creations_per_ip_per_minute: int = Field(
        60,
        gt=0,
        description="Job creations per client IP per minute (the WAF rate rule in AWS).",
        json_schema_extra={"group": "Rate limits and quotas"},
    )

    ffmpeg: str | None = Field(
        None,
        description="Path of the ffmpeg binary (in Lambda, the ffmpeg layer's); "
        "unset: the one the imageio-ffmpeg wheel ships.",
        json_schema_extra={"group": "Media"},
    )
    ffmpeg_threads: int = Field(
        0, ge=0, description="Threads per ffmpeg run; 0 lets ffmpeg decide.", json_schema_extra={"group": "Media"}
    )
    fonts_dir: Path | None = Field(
        None,
        description="The only fonts burned-in subtitles are drawn with; add a font with CJK or Arabic glyphs "
        "here to draw those scripts (else they show as boxes). Unset: the bundled Source Sans Pro "
        "(the wheel locally, /opt/share/fonts from the Lambda layer).",
        json_schema_extra={"group": "Media"},
    )
    work_dir: Path | None = Field(
        None,
        description="Scratch folder for media work; unset: the system temp folder.",
        json_schema_extra={"group": "Media"},
    )

    # Speech recognition.
    asr_provider: Literal["whisper", "openai", "transcribe", "fake"] = Field(
        "whisper",
        description="Who transcribes: `whisper` (faster-whisper on the CPU, int8), `openai` (any OpenAI-compatible "
        "server), `transcribe` (Amazon Transcribe, the AWS default) or `fake` (deterministic, for tests).",
        json_schema_extra={"group": "Speech recognition"},
    )
    asr_timeout_seconds: int = Field(
        600,
        gt=0,
        description="How long the provider may take on one transcription before the job fails with `TIMEOUT`. "
        "The Transcribe state allows 2 minutes more for the audio and the files; in AWS the worker's "
        "15-minute limit bounds the sum.",
        json_schema_extra={"group": "Speech recognition"},
    )
    asr_heartbeat_seconds: int = Field(
        60,
        ge=1,
        description="The Transcribe state's `HeartbeatSeconds`: the worker beats 3 times per period, "
        "and one silent this long is presumed dead.",
        json_schema_extra={"group": "Speech recognition"},
    )
    asr_workers: int = Field(
        1,
        ge=0,
        description="Local mode: threads draining the ASR queue.",
        json_schema_extra={"group": "Speech recognition"},
    )
    whisper_model: str = Field(
        "base",
        description="faster-whisper model: a name (downloaded on first use) or the path of a CTranslate2 model folder.",
        json_schema_extra={"group": "Speech recognition"},
    )
    whisper_threads: int = Field(
        0,
        ge=0,
        description="CPU threads for faster-whisper; 0 lets it decide.",
        json_schema_extra={"group": "Speech recognition"},
    )
    openai_base_url: str = Field(
        "https://api.openai.com",
        description="openai provider: base URL of an OpenAI-compatible server (…/v1/audio/transcriptions).",
        json_schema_extra={"group": "Speech recognition"},
    )
    openai_api_key: SecretStr | None = Field(
        None,
        description="openai provider: the bearer token; unset sends no Authorization header (or, with "
        "`CLIPLINE_OPENAI_API_KEY_SECRET`, the secret's).",
        json_schema_extra={"group": "Speech recognition"},
    )
    openai_api_key_secret: str | None = Field(
        None,
        description="openai provider in AWS: the Secrets Manager secret (name or ARN) holding the bearer token, "
        "read on the first transcription, so the key never sits in the function's configuration.",
        json_schema_extra={"group": "Speech recognition"},
    )
    openai_model: str = Field(
        "whisper-1",
        description="openai provider: the model name sent with each request.",
        json_schema_extra={"group": "Speech recognition"},
    )
    transcribe_poll_seconds: float = Field(
        5.0,
        gt=0,
        description="transcribe provider: how often to poll Amazon Transcribe for the job's status.",
        json_schema_extra={"group": "Speech recognition"},
    )

    # Webhooks.
    webhook_retry_schedule: str = Field(
        "5,300,1800,7200,18000,36000,36000",
        pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$",
        description="Seconds to wait before each retry of an undelivered webhook, comma-separated, each spread "
        "by up to 20% of jitter; after the last, the message is given up on. The default is the Standard "
        "Webhooks schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (8 attempts over about 27 hours).",
        json_schema_extra={"group": "Webhooks"},
    )
    webhook_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=30,
        description="How long one webhook attempt may take, connection to last byte; a receiver still "
        "answering then counts as a failed attempt.",
        json_schema_extra={"group": "Webhooks"},
    )
    webhook_workers: int = Field(
        4,
        ge=1,
        le=32,
        description="Local mode: threads sending webhooks from the outbox.",
        json_schema_extra={"group": "Webhooks"},
    )

    # Local mode.
    data_dir: Path = Field(
        Path("./data"),
        description="Local mode: where jobs (SQLite), artifacts, API keys and the link-signing secret live.",
        json_schema_extra={"group": "Local mode"},
    )
    cleanup_interval_seconds: float = Field(
        300,
        gt=0,
        description="Local mode: how often `clipline serve` removes expired jobs, transcripts and orphaned files; "
        "`clipline cleanup [--dry-run]` does it on demand.",
        json_schema_extra={"group": "Local mode"},
    )
    public_url: str | None = Field(
        None,
        description="Local mode: the base URL signed links name; unset: the address the gateway listens on.",
        json_schema_extra={"group": "Local mode"},
    )

    # AWS mode: names the stack passes to each function.
    jobs_table: str = Field(
        "clipline-jobs", description="AWS: the DynamoDB jobs table.", json_schema_extra={"group": "AWS"}
    )
    artifacts_bucket: str = Field(
        "", description="AWS: the S3 artifacts bucket; the stack sets it.", json_schema_extra={"group": "AWS"}
    )
    state_machine_arn: str = Field(
        "",
        description="AWS: the pipeline state machine's ARN; the stack sets it.",
        json_schema_extra={"group": "AWS"},
    )
    aws_region: str | None = Field(
        None, description="AWS region; unset: the SDK's own lookup.", json_schema_extra={"group": "AWS"}
    )
    storage_max_attempts: int = Field(
        5,
        ge=1,
        le=10,
        description="Attempts per storage call (botocore standard retries, jittered backoff).",
        json_schema_extra={"group": "AWS"},
    )
    webhook_queue_url: str = Field(
        "", description="AWS: the SQS queue of due webhook messages; the stack sets it.", json_schema_extra={"group": "AWS"}
    )
    webhook_dead_letter_queue_url: str = Field(
        "",
        description="AWS: where the delivery function puts a message it gave up on; the stack sets it.",
        json_schema_extra={"group": "AWS"},
    )
    webhook_secrets_prefix: str = Field(
        "clipline/webhook-secrets",
        description="AWS: the Secrets Manager name prefix of the webhook signing secrets, one per API key "
        "(`<prefix>/<API key id>`); the stack sets it.",
        json_schema_extra={"group": "AWS"},
    )
    console_origins: str = Field(
        "",
        description="Comma-separated origins (`https://console.example.com`) whose pages may call the API from a "
        "browser (CORS), in AWS. The stack sets its own console's; local mode's console shares the gateway's origin, "
        "and its gateway answers no CORS preflight.",
        json_schema_extra={"group": "AWS"},
    )

    @classmethod
    def for_data_dir(cls, data_dir: Path | None) -> "Settings":
        """The settings from the environment, with ``data_dir`` instead of its own when one is given."""
        return cls(data_dir=data_dir) if data_dir else cls()

    @property
    def webhook_schedule(self) -> RetrySchedule:
        return RetrySchedule.parse(self.webhook_retry_schedule)

    @property
    def source_port_set(self) -> frozenset[int]:
        return frozenset(int(port) for port in self.source_ports.split(",") if port.strip())

    @property
    def console_origin_set(self) -> frozenset[str]:
        return frozenset(origin.strip().rstrip("/") for origin in self.console_origins.split(",") if origin.strip())

    @property
    def source_allowlist_patterns(self) -> tuple[str, ...]:
        return tuple(p.strip().lower().rstrip(".") for p in self.source_allowlist.split(",") if p.strip())


@lru_cache(maxsize=1)
def settings_from_environment() -> Settings:
    return Settings()
