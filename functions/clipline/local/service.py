"""Local mode, whole: gateway, engine host, SQLite jobs and folder artifacts, on one machine."""

from __future__ import annotations

import threading
from pathlib import Path

from ..adapters.aws.step_functions_task_callback import StepFunctionsTaskCallback
from ..adapters.aws.step_functions_workflow import StepFunctionsWorkflow
from ..adapters.local.filesystem_artifact_store import FilesystemArtifactStore, LocalUrlSigner
from ..adapters.local.secret_file import derive_key, load_or_create_secret
from ..adapters.local.sqlite_api_key_store import SqliteApiKeyStore
from ..adapters.local.sqlite_asr_job_repository import SqliteAsrJobRepository
from ..adapters.local.sqlite_job_repository import SqliteJobRepository
from ..composition import SystemClock, install, limits_from, media_services, transcriber_for
from ..domain.ports import Transcriber
from ..domain.use_cases import Services
from ..observability import PowertoolsTelemetry, logger
from ..settings import Settings
from .asr_workers import AsrWorkers
from .engine import EngineHost
from .gateway import GatewayDependencies, LocalGateway


class DataDir:
    """Where local mode keeps its state: one SQLite file, the artifacts folder, the secret."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.database = self.root / "clipline.sqlite3"
        self.artifacts = self.root / "artifacts"
        self.secret = self.root / "secret.key"

    def key_store(self, clock: SystemClock) -> SqliteApiKeyStore:
        secret = load_or_create_secret(self.secret)
        return SqliteApiKeyStore(self.database, derive_key(secret, "api-key-hash"), clock.now)

    def signer(self) -> LocalUrlSigner:
        return LocalUrlSigner(derive_key(load_or_create_secret(self.secret), "artifact-link"))


class LocalService:
    """Starts and stops everything ``clipline serve`` runs."""

    def __init__(
        self,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 8080,
        transcriber: Transcriber | None = None,
    ) -> None:
        """``transcriber`` replaces the one ``settings.asr_provider`` names (tests use it to inject failures)."""
        self.settings = settings
        self.data = DataDir(settings.data_dir)
        self.gateway = LocalGateway(host, port)
        self.engine = EngineHost(settings)
        self.transcriber = transcriber or transcriber_for(settings)
        self.asr_workers: AsrWorkers | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.gateway.base_url

    def start(self) -> None:
        clock = SystemClock()
        # Signed links name the address the gateway really listens on, unless one is configured.
        public_url = self.settings.public_url or self.base_url
        signer = self.data.signer()
        artifacts = FilesystemArtifactStore(self.data.artifacts, signer, public_url)
        self.engine.start()
        install(
            Services(
                jobs=SqliteJobRepository(self.data.database, clock.now),
                artifacts=artifacts,
                workflow=StepFunctionsWorkflow(self.engine.client("stepfunctions"), self.engine.state_machine_arn),
                asr_jobs=SqliteAsrJobRepository(self.data.database),
                transcriber=self.transcriber,
                task_callback=StepFunctionsTaskCallback(self.engine.client("stepfunctions")),
                telemetry=PowertoolsTelemetry(),
                clock=clock,
                limits=limits_from(self.settings),
                work_dir=self.settings.work_dir,
                **media_services(self.settings),
            )
        )
        self.gateway.dependencies = GatewayDependencies(
            keys=self.data.key_store(clock), artifacts=artifacts, signer=signer, now=clock.now
        )
        self.asr_workers = AsrWorkers(
            self.engine.client("sqs"),
            self.engine.client("stepfunctions"),
            self.engine.asr_queue_url,
            self.settings.asr_workers,
            heartbeat_seconds=self.settings.asr_heartbeat_seconds,
        )
        self.asr_workers.start()
        self._thread = threading.Thread(target=self.gateway.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        logger.info("local mode started", extra={"url": self.base_url, "dataDir": str(self.data.root)})

    def stop(self) -> None:
        self.gateway.shutdown()
        self.gateway.server_close()
        if self.asr_workers is not None:
            self.asr_workers.stop()
        self.engine.stop()
        install(None)

    def __enter__(self) -> "LocalService":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
