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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPLINE_", extra="ignore")

    mode: Literal["local", "aws"] = Field(
        "local", description="Which adapters to build: local (SQLite, folder, moto engine) or aws."
    )

    # Limits on what a job may ask for.
    max_clip_seconds: float = Field(600.0, gt=0, description="Longest clip a job may ask for.")
    clip_timeout_seconds: int = Field(
        600, gt=0, description="How long one ffmpeg clip run may take before it is killed (CLIP_TIMEOUT)."
    )
    probe_timeout_seconds: int = Field(60, gt=0, description="How long probing a source may take.")
    job_timeout_seconds: int = Field(
        1800, gt=0, description="The state machine's global timeout; a job still running then fails with JOB_TIMEOUT."
    )
    retention_days: float = Field(7.0, gt=0, description="How long jobs and their artifacts are kept.")
    signed_url_ttl_seconds: int = Field(
        3600, gt=0, le=7 * 24 * 3600, description="Lifetime of a signed artifact link (never past the job's expiry)."
    )

    # Which sources may be fetched. The full SSRF policy builds on these.
    source_allowlist: str = Field(
        "", description="Comma-separated hosts (or *.example.com patterns) sources must come from; empty allows any public host."
    )
    allow_private_sources: bool = Field(
        False, description="Allow loopback and private-network sources. Only for tests and the demo."
    )

    source_ports: str = Field("80,443", description="Comma-separated ports a source URL may name.")
    max_source_bytes: int = Field(
        20 * 1024**3, gt=0, description="Largest source (by Content-Length, or bytes read) ffmpeg may fetch from."
    )
    max_source_seconds: float = Field(6 * 3600, gt=0, description="Longest source duration accepted.")
    first_byte_timeout_seconds: float = Field(
        15, gt=0, description="Longest wait for a source's first byte (and for any later read)."
    )
    max_redirects: int = Field(3, ge=0, le=10, description="Redirects a source fetch may follow; each is checked again.")

    # Usage plans (local mode reproduces API Gateway's): the plan a new key gets unless it names its own.
    key_rate_per_second: float = Field(10, gt=0, description="Local mode: default steady request rate per API key.")
    key_burst: int = Field(20, gt=0, description="Local mode: default burst per API key (token bucket size).")
    key_quota: int = Field(10000, gt=0, description="Local mode: default requests per quota period per API key.")
    key_quota_period: Literal["day", "week", "month"] = Field("day", description="Local mode: default quota period.")
    job_creations_per_ip_per_minute: int = Field(
        60, gt=0, description="Job creations per client IP per minute (the WAF rate rule in AWS)."
    )

    ffmpeg: str | None = Field(None, description="Path of the ffmpeg binary; default: the one the imageio-ffmpeg wheel ships.")
    ffmpeg_threads: int = Field(0, ge=0, description="Threads per ffmpeg run; 0 lets ffmpeg decide.")
    fonts_dir: Path | None = Field(
        None,
        description="Fonts burned-in subtitles are drawn with (and the only ones used); "
        "default: the bundled Source Sans Pro (the wheel locally, /opt/share/fonts from the Lambda layer).",
    )
    work_dir: Path | None = Field(None, description="Scratch folder for media work; default: the system temp folder.")

    # Speech recognition.
    asr_provider: Literal["whisper", "openai", "transcribe", "fake"] = Field(
        "whisper", description="Who transcribes: whisper (faster-whisper, local default), openai, transcribe (AWS default) or fake."
    )
    asr_timeout_seconds: int = Field(
        600,
        gt=0,
        description="How long the provider may take on one transcription before it fails with TIMEOUT. "
        "The Transcribe state and the AWS worker allow 2 minutes more for the audio and the files.",
    )
    asr_heartbeat_seconds: int = Field(
        60, ge=1, description="The Transcribe state's HeartbeatSeconds; a worker silent this long is presumed dead."
    )
    asr_workers: int = Field(1, ge=0, description="Local mode: threads draining the ASR queue.")
    whisper_model: str = Field(
        "base", description="faster-whisper model: a name (downloaded on first use) or the path of a CTranslate2 model folder."
    )
    whisper_threads: int = Field(0, ge=0, description="CPU threads for faster-whisper; 0 lets it decide.")
    openai_base_url: str = Field(
        "https://api.openai.com", description="openai provider: base URL of an OpenAI-compatible server (…/v1/audio/transcriptions)."
    )
    openai_api_key: SecretStr | None = Field(None, description="openai provider: the bearer token.")
    openai_model: str = Field("whisper-1", description="openai provider: the model name sent with each request.")
    transcribe_poll_seconds: float = Field(
        5.0, gt=0, description="transcribe provider: how often to poll Amazon Transcribe for the job's status."
    )

    # Local mode.
    data_dir: Path = Field(Path("./data"), description="Local mode: where jobs (SQLite), artifacts and keys live.")
    cleanup_interval_seconds: float = Field(
        300, gt=0, description="Local mode: how often the sweeper removes expired jobs, transcripts and orphaned files."
    )
    public_url: str | None = Field(
        None, description="Local mode: the base URL signed links name; default: the address the gateway listens on."
    )

    # AWS mode: names the stack passes to each function.
    jobs_table: str = Field("clipline-jobs", description="AWS: the DynamoDB jobs table.")
    artifacts_bucket: str = Field("", description="AWS: the S3 artifacts bucket.")
    state_machine_arn: str = Field("", description="AWS: the pipeline state machine.")
    aws_region: str | None = Field(None, description="AWS region; default: the SDK's own lookup.")
    storage_max_attempts: int = Field(
        5, ge=1, le=10, description="Attempts per storage call (botocore standard retries, jittered backoff)."
    )

    @property
    def source_port_set(self) -> frozenset[int]:
        return frozenset(int(port) for port in self.source_ports.split(",") if port.strip())

    @property
    def source_allowlist_patterns(self) -> tuple[str, ...]:
        return tuple(p.strip().lower().rstrip(".") for p in self.source_allowlist.split(",") if p.strip())


@lru_cache(maxsize=1)
def settings_from_environment() -> Settings:
    return Settings()
