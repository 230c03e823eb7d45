"""One Lambda per row of ``clipline.workflow.LAMBDA_SIZES``, sized by that table and the stage's overrides."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from clipline.settings import Settings
from clipline.workflow import ASR_WORKER_HANDLER, LAMBDA_SIZES
from layers.dependencies.build import build_dependencies_layer, function_code_excludes

from . import FUNCTIONS_DIR, REPO_ROOT, acknowledge
from .config import StageConfig
from .ffmpeg_layer import LAYER_FFMPEG_PATH, FfmpegLayer

RUNTIME = lambda_.Runtime.PYTHON_3_12
# The ffmpeg binary in the layer (and the whisper image's) is built for x86_64.
ARCHITECTURE = lambda_.Architecture.X86_64
WHISPER_DOCKERFILE = "containers/asr-whisper/Dockerfile"
HANDLER_ENTRY = "lambda_handler"


def env_name(field: str) -> str:
    """The environment variable ``clipline.settings.Settings`` reads ``field`` from.

    Raises:
        KeyError: Settings has no such field, so the function would never read it.
    """
    if field not in Settings.model_fields:
        raise KeyError(f"clipline.settings.Settings has no field {field!r}")
    return f"{Settings.model_config['env_prefix']}{field}".upper()


def settings_environment(values: dict[str, object]) -> dict[str, str]:
    return {env_name(field): str(value).lower() if isinstance(value, bool) else str(value) for field, value in values.items()}


class Functions(Construct):
    """Every clipline Lambda, by its LAMBDA_SIZES name; ``by_handler`` finds one by handler module."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        jobs_table_name: str,
        artifacts_bucket_name: str,
        ffmpeg_layer: FfmpegLayer,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        dependencies_dir = build_dependencies_layer()
        # Every zip function has the dependencies layer; the ffmpeg ones add ffmpeg on top, the largest sum.
        ffmpeg_layer.check_fits_with(FUNCTIONS_DIR, dependencies_dir)
        dependencies = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=lambda_.Code.from_asset(str(dependencies_dir)),
            compatible_architectures=[ARCHITECTURE],
            compatible_runtimes=[RUNTIME],
            description="clipline's runtime requirements (Powertools, pydantic, ...) for Python 3.12 x86_64",
        )
        code = lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=function_code_excludes())

        shared = settings_environment(
            {
                "mode": "aws",
                "jobs_table": jobs_table_name,
                "artifacts_bucket": artifacts_bucket_name,
                "asr_provider": config.asr_provider,
                "retention_days": config.retention_days,
                "job_timeout_seconds": config.job_timeout_seconds,
                "probe_timeout_seconds": config.probe_timeout_seconds,
                "clip_timeout_seconds": config.clip_timeout_seconds,
                "asr_timeout_seconds": config.asr_timeout_seconds,
                "asr_heartbeat_seconds": config.asr_heartbeat_seconds,
                "job_creations_per_ip_per_minute": config.job_creations_per_ip_per_minute,
                **config.settings,
            }
        )
        self.functions: dict[str, lambda_.Function] = {}
        for name, size in LAMBDA_SIZES.items():
            environment = dict(shared)
            if size.handler == ASR_WORKER_HANDLER:
                environment.update(self._provider_environment())
            whisper_image = size.handler == ASR_WORKER_HANDLER and config.asr_provider == "whisper"
            if size.uses_ffmpeg and not whisper_image:
                # The whisper image brings its own ffmpeg; the zip functions get the layer's.
                environment[env_name("ffmpeg")] = LAYER_FFMPEG_PATH
            function_name = f"{config.name_prefix}-{name}"
            log_group = logs.LogGroup(
                self,
                f"{name}Logs",
                log_group_name=f"/aws/lambda/{function_name}",
                retention=logs.RetentionDays[config.log_retention],
                # Logs are for incidents, not records; they go with the stack.
                removal_policy=RemovalPolicy.DESTROY,
            )
            common = dict(
                function_name=function_name,
                architecture=ARCHITECTURE,
                memory_size=config.memory_mb_of(name),
                timeout=Duration.seconds(config.timeout_seconds_of(name)),
                ephemeral_storage_size=Size.mebibytes(config.ephemeral_storage_mb_of(name)),
                tracing=lambda_.Tracing.ACTIVE,
                environment=environment,
                log_group=log_group,
            )
            if whisper_image:
                # faster-whisper and the model are too large for a layer; the image's CMD is the worker handler.
                function: lambda_.Function = lambda_.DockerImageFunction(
                    self,
                    name,
                    code=lambda_.DockerImageCode.from_image_asset(
                        str(REPO_ROOT), file=WHISPER_DOCKERFILE, platform=ecr_assets.Platform.LINUX_AMD64
                    ),
                    **common,
                )
            else:
                function = lambda_.Function(
                    self,
                    name,
                    runtime=RUNTIME,
                    code=code,
                    handler=f"{size.handler}.{HANDLER_ENTRY}",
                    layers=[dependencies, ffmpeg_layer.layer] if size.uses_ffmpeg else [dependencies],
                    **common,
                )
            self.functions[name] = function
            _acknowledge_function_findings(function, is_zip=not whisper_image)

    def _provider_environment(self) -> dict[str, str]:
        config = self._config
        if config.asr_provider != "openai":
            return {}
        # The worker reads the key from Secrets Manager on its first transcription: the key is never in
        # the template, the repository or the function's configuration, and a rotated key needs no deploy.
        return settings_environment(
            {
                "openai_api_key_secret": config.openai_secret_name,
                "openai_base_url": config.openai_base_url,
                "openai_model": config.openai_model,
            }
        )

    def __getitem__(self, name: str) -> lambda_.Function:
        return self.functions[name]

    def by_handler(self, handler: str) -> lambda_.Function:
        """The function serving ``handler`` (a module path such as ``clipline.handlers.create_job``).

        Raises:
            KeyError: no row of LAMBDA_SIZES names that handler.
        """
        for name, size in LAMBDA_SIZES.items():
            if size.handler == handler:
                return self.functions[name]
        raise KeyError(f"no function serves {handler}")


def _acknowledge_function_findings(function: lambda_.Function, *, is_zip: bool) -> None:
    # AWS maintains this policy for exactly this purpose: a function's own log writes.
    acknowledge(
        function,
        "AwsSolutions-IAM4",
        "AWSLambdaBasicExecutionRole grants only the function's CloudWatch Logs writes.",
        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    )
    # Active tracing adds xray:PutTraceSegments and xray:PutTelemetryRecords, which take no resource.
    acknowledge(
        function,
        "AwsSolutions-IAM5",
        "X-Ray's PutTraceSegments/PutTelemetryRecords have no resource-level permissions.",
        "Resource::*",
    )
    if is_zip:
        # Both layers are built for cp312; a runtime move rebuilds them and reruns the asset tests.
        acknowledge(
            function,
            "AwsSolutions-L1",
            "Python 3.12 is pinned: the dependencies layer is built for cp312 x86_64 and tested with it.",
        )
