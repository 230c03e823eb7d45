"""Builds the object graph for AWS or local mode, once, and hands it to handlers.

In AWS each Lambda builds its graph from the environment on first use. Local
mode builds it from the running service (its data dir and engine) and installs
it before any handler runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .domain.ports import Transcriber
from .domain.use_cases import Limits, Services
from .settings import Settings, settings_from_environment
from .workflow import AUDIO_EXTRACTION_TIMEOUT_SECONDS


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_clip_seconds=settings.max_clip_seconds,
        retention=timedelta(days=settings.retention_days),
        signed_url_ttl=timedelta(seconds=settings.signed_url_ttl_seconds),
        # Three beats per HeartbeatSeconds, so one slow or lost beat does not fail the task.
        heartbeat_interval_seconds=settings.asr_heartbeat_seconds / 3,
        webhook_schedule=settings.webhook_schedule,
        allow_http_webhooks=settings.allow_private_sources,
        max_upload_bytes=settings.max_source_bytes,
        upload_link_ttl=timedelta(seconds=settings.upload_link_ttl_seconds),
        upload_retention=timedelta(hours=settings.upload_retention_hours),
    )


def media_services(settings: Settings) -> dict[str, Any]:
    """The source guard, prober, clipper, audio extractor, subtitle burner and webhook sender; the same in both modes.

    ffmpeg reaches sources only through the egress proxy, which applies the
    same guard to every connection (redirects included) and connects to the
    address it checked. It starts on first use, once per graph.
    """
    from .adapters.http_webhook_sender import HttpWebhookSender
    from .media.audio import FfmpegAudioExtractor
    from .media.burn_in import FfmpegSubtitleBurner, default_fonts_dir
    from .media.clip import FfmpegClipper
    from .media.egress_proxy import EgressProxy
    from .media.ffmpeg_binary import ffmpeg_to_run
    from .media.probe import FfmpegProber, SourceAccess
    from .media.source_guard import AddressSourceGuard

    ffmpeg = ffmpeg_to_run(settings.ffmpeg)
    guard = AddressSourceGuard(
        settings.source_allowlist_patterns, settings.allow_private_sources, settings.source_port_set
    )
    access = SourceAccess(
        egress=EgressProxy(guard, settings.max_source_bytes, settings.first_byte_timeout_seconds),
        max_redirects=settings.max_redirects,
        read_timeout_seconds=settings.first_byte_timeout_seconds,
    )
    prober = FfmpegProber(ffmpeg, settings.probe_timeout_seconds, access, settings.max_source_seconds)
    fonts_dir = settings.fonts_dir or default_fonts_dir()
    return {
        "source_guard": guard,
        # Webhooks leave through the same policy as sources: the guard checks the address each POST goes to.
        "webhook_sender": HttpWebhookSender(guard, settings.webhook_timeout_seconds),
        "prober": prober,
        "clipper": FfmpegClipper(ffmpeg, prober, settings.clip_timeout_seconds, settings.ffmpeg_threads, access),
        "audio_extractor": FfmpegAudioExtractor(ffmpeg, AUDIO_EXTRACTION_TIMEOUT_SECONDS),
        # Without fonts there is no burner, and a burn-in fails its job rather than drawing nothing.
        "subtitle_burner": FfmpegSubtitleBurner(
            ffmpeg, prober, fonts_dir, settings.clip_timeout_seconds, settings.ffmpeg_threads
        )
        if fonts_dir
        else None,
    }


def transcriber_for(settings: Settings) -> Transcriber:
    """The speech-recognition provider ``settings.asr_provider`` names. Nothing loads until first use."""
    provider = settings.asr_provider
    timeout = settings.asr_timeout_seconds
    if provider == "whisper":
        from .asr.whisper import WhisperTranscriber

        return WhisperTranscriber(settings.whisper_model, settings.whisper_threads, timeout)
    if provider == "openai":
        from .asr.openai import OpenAiTranscriber

        api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        secret = settings.openai_api_key_secret
        loader = (lambda: secret_string(secret, settings)) if secret and api_key is None else None
        return OpenAiTranscriber(settings.openai_base_url, api_key, settings.openai_model, timeout, loader)
    if provider == "transcribe":
        from .asr.transcribe import AmazonTranscribeTranscriber

        return AmazonTranscribeTranscriber(
            aws_client("transcribe", settings),
            aws_client("s3", settings),
            settings.artifacts_bucket,
            timeout,
            settings.transcribe_poll_seconds,
        )
    from .asr.fake import FakeTranscriber

    return FakeTranscriber(timeout_seconds=timeout)


def secret_string(secret_id: str, settings: Settings) -> str:
    """The text of a Secrets Manager secret.

    Raises:
        ServiceUnavailableError: Secrets Manager could not be reached or refused.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from .domain.errors import ServiceUnavailableError

    try:
        return aws_client("secretsmanager", settings).get_secret_value(SecretId=secret_id)["SecretString"]
    except (BotoCoreError, ClientError) as error:
        raise ServiceUnavailableError(f"could not read the secret {secret_id}: {error}") from error


def boto_config(settings: Settings) -> Any:
    from botocore.config import Config

    # Standard mode retries throttling and transient errors with jittered exponential backoff.
    # SigV4 presigned URLs work in every region and with KMS-encrypted objects.
    return Config(
        retries={"mode": "standard", "total_max_attempts": settings.storage_max_attempts},
        signature_version="s3v4",
    )


def aws_client(service: str, settings: Settings) -> Any:
    import boto3

    region = {"region_name": settings.aws_region} if settings.aws_region else {}
    return boto3.client(service, config=boto_config(settings), **region)


def build_aws_services(settings: Settings) -> Services:
    from .adapters.aws.dynamo_asr_job_repository import DynamoAsrJobRepository
    from .adapters.aws.dynamo_job_repository import DynamoJobRepository
    from .adapters.aws.dynamo_upload_repository import DynamoUploadRepository
    from .adapters.aws.s3_artifact_store import S3ArtifactStore
    from .adapters.aws.secrets_manager_webhook_secrets import (
        SecretsManagerWebhookSecrets,
    )
    from .adapters.aws.sqs_webhook_queue import SqsWebhookQueue
    from .adapters.aws.step_functions_task_callback import StepFunctionsTaskCallback
    from .adapters.aws.step_functions_workflow import StepFunctionsWorkflow
    from .adapters.timed_artifact_store import TimedArtifactStore
    from .observability import PowertoolsTelemetry

    clock = SystemClock()
    dynamodb = aws_client("dynamodb", settings)
    stepfunctions = aws_client("stepfunctions", settings)
    limits = limits_from(settings)
    telemetry = PowertoolsTelemetry()
    return Services(
        jobs=DynamoJobRepository(dynamodb, settings.jobs_table, clock.now, retention=limits.retention),
        artifacts=TimedArtifactStore(
            S3ArtifactStore(aws_client("s3", settings), settings.artifacts_bucket, clock.now), telemetry
        ),
        workflow=StepFunctionsWorkflow(stepfunctions, settings.state_machine_arn),
        asr_jobs=DynamoAsrJobRepository(dynamodb, settings.jobs_table, retention=limits.retention),
        uploads=DynamoUploadRepository(dynamodb, settings.jobs_table),
        transcriber=transcriber_for(settings),
        task_callback=StepFunctionsTaskCallback(stepfunctions),
        # Only the functions the stack gives the queue's URL announce; only the delivery function's role may read secrets.
        webhook_queue=SqsWebhookQueue(
            aws_client("sqs", settings), settings.webhook_queue_url, settings.webhook_dead_letter_queue_url
        )
        if settings.webhook_queue_url
        else None,
        webhook_secrets=SecretsManagerWebhookSecrets(aws_client("secretsmanager", settings), settings.webhook_secrets_prefix),
        telemetry=telemetry,
        clock=clock,
        limits=limits,
        work_dir=settings.work_dir,
        browser_origins=settings.console_origin_set,
        **media_services(settings),
    )


@dataclass
class _Installed:
    services: Services | None = None


_installed = _Installed()
_lock = threading.Lock()


def install(built: Services | None) -> None:
    """Make ``built`` the graph every handler in this process uses (None forgets it)."""
    with _lock:
        _installed.services = built


def services() -> Services:
    """The graph handlers use: the installed one, else (in AWS) one built from the environment."""
    with _lock:
        if _installed.services is None:
            settings = settings_from_environment()
            if settings.mode != "aws":
                raise RuntimeError("local mode installs its services before handlers run; start `clipline serve`")
            _installed.services = build_aws_services(settings)
        return _installed.services
