"""Local mode, whole: gateway, engine host, SQLite jobs and folder artifacts, on one machine."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO

from ..adapters.aws.step_functions_task_callback import StepFunctionsTaskCallback
from ..adapters.aws.step_functions_workflow import StepFunctionsWorkflow
from ..adapters.local.filesystem_artifact_store import (
    FilesystemArtifactStore,
    LocalUrlSigner,
)
from ..adapters.local.secret_file import derive_key, load_or_create_secret
from ..adapters.local.sqlite_api_key_store import SqliteApiKeyStore
from ..adapters.local.sqlite_asr_job_repository import SqliteAsrJobRepository
from ..adapters.local.sqlite_execution_archive import SqliteExecutionArchive
from ..adapters.local.sqlite_job_repository import SqliteJobRepository
from ..adapters.local.sqlite_rate_limiter import SqliteRateLimiter
from ..adapters.local.sqlite_upload_repository import SqliteUploadRepository
from ..adapters.local.sqlite_webhook_outbox import SqliteWebhookOutbox
from ..adapters.local.sqlite_webhook_secrets import SqliteWebhookSecrets
from ..adapters.timed_artifact_store import TimedArtifactStore
from ..composition import (
    SystemClock,
    install,
    limits_from,
    media_services,
    transcriber_for,
)
from ..domain.cleanup import BATCH, CleanupReport, clean_up
from ..domain.errors import JobInterruptedError
from ..domain.ports import Transcriber
from ..domain.rate_limits import UsagePlan
from ..domain.record_versions import DEFAULT_RETENTION
from ..domain.use_cases import Services, interrupt_unfinished_jobs
from ..handlers._failure_log import log_recorded_failure
from ..observability import PowertoolsTelemetry, logger
from ..settings import Settings
from .asr_workers import AsrWorkers
from .child_transcriber import ChildProcessWhisperTranscriber
from .engine import EngineHost
from .gateway import GatewayDependencies, LocalGateway
from .in_process_workflow import InProcessWorkflow
from .prometheus_metrics import PrometheusMetrics
from .webhook_worker import WebhookWorkers

# What a job that was running when local mode stopped says, in error.message.
INTERRUPTED_MESSAGE = "the service stopped while the job ran; nothing was kept: create the job again"


def default_usage_plan(settings: Settings) -> UsagePlan:
    """The plan of keys created without one: CLIPLINE_KEY_RATE_PER_SECOND, _KEY_BURST, _KEY_QUOTA, _KEY_QUOTA_PERIOD."""
    return UsagePlan(
        rate_per_second=settings.key_rate_per_second,
        burst=settings.key_burst,
        quota=settings.key_quota,
        quota_period=settings.key_quota_period,
    )


class DataDir:
    """Where local mode keeps its state: one SQLite file, the artifacts folder, the secret.

    ``retention`` is the service's: a store opened here may migrate an old file, which dates old records with it.
    """

    def __init__(self, root: Path, retention: timedelta = DEFAULT_RETENTION) -> None:
        self.root = root.resolve()
        self.retention = retention
        self.database = self.root / "clipline.sqlite3"
        self.artifacts = self.root / "artifacts"
        self.secret = self.root / "secret.key"
        # Held by every live `clipline serve` (see ServeLock); the kernel releases them however the process ends.
        self.serve_lock = self.root / "serve.lock"
        self.start_lock = self.root / "start.lock"

    @classmethod
    def of(cls, settings: Settings) -> "DataDir":
        """The data dir ``settings`` name, dating old records with their retention."""
        return cls(settings.data_dir, limits_from(settings).retention)

    def execution_archive(self, clock: SystemClock) -> SqliteExecutionArchive:
        return SqliteExecutionArchive(self.database, clock.now, retention=self.retention)

    def key_store(self, clock: SystemClock) -> SqliteApiKeyStore:
        secret = load_or_create_secret(self.secret)
        return SqliteApiKeyStore(self.database, derive_key(secret, "api-key-hash"), clock.now, retention=self.retention)

    def rate_limiter(self, clock: SystemClock, job_creations_per_minute: int) -> SqliteRateLimiter:
        return SqliteRateLimiter(
            self.database, clock.now, job_creations_per_minute=job_creations_per_minute, retention=self.retention
        )

    def webhook_secrets(self, clock: SystemClock) -> SqliteWebhookSecrets:
        return SqliteWebhookSecrets(self.database, clock.now, retention=self.retention)

    def webhook_outbox(self) -> SqliteWebhookOutbox:
        return SqliteWebhookOutbox(self.database, retention=self.retention)

    def signer(self) -> LocalUrlSigner:
        return LocalUrlSigner(derive_key(load_or_create_secret(self.secret), "artifact-link"))

    def stores(self, clock: SystemClock, public_url: str) -> dict:
        """The job, ASR, upload and artifact stores, as Services fields."""
        return {
            "jobs": SqliteJobRepository(self.database, clock.now, retention=self.retention),
            "asr_jobs": SqliteAsrJobRepository(self.database, retention=self.retention),
            "uploads": SqliteUploadRepository(self.database, retention=self.retention),
            "artifacts": FilesystemArtifactStore(self.artifacts, self.signer(), public_url),
        }


def sweep(
    services: Services, archive: SqliteExecutionArchive, dry_run: bool = False
) -> tuple[CleanupReport, list[str]]:
    """One cleanup pass over a data dir, as the sweeper and `clipline cleanup` run it.

    What clean_up removes, then the expired execution histories, whose job ids it
    returns. Histories go after the jobs, so the jobs removed just now take theirs along.
    """
    report = clean_up(services, dry_run=dry_run)
    return report, archive.remove_expired(services.clock.now(), BATCH, dry_run=dry_run)


def cleanup_services(settings: Settings) -> Services:
    """What `clipline cleanup` needs: the data dir's stores and a clock, no engine or media."""
    clock = SystemClock()
    return Services(
        **DataDir.of(settings).stores(
            clock, settings.public_url or "http://127.0.0.1"
        ),
        workflow=None,
        source_guard=None,
        prober=None,
        clipper=None,
        telemetry=PowertoolsTelemetry(),
        clock=clock,
        limits=limits_from(settings),
    )


class Sweeper:
    """Runs the cleanup every ``interval`` seconds on a thread, the local stand-in for TTL and lifecycle rules."""

    def __init__(self, services: Services, interval: float, archive: SqliteExecutionArchive) -> None:
        """``archive`` holds execution histories, which go with their jobs."""
        self._services = services
        self._interval = interval
        self._archive = archive
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                report, histories = sweep(self._services, self._archive)
            except Exception:  # noqa: BLE001 - a sweep that fails is tried again at the next interval
                logger.exception("cleanup failed")
                continue
            if report.expired_jobs or report.expired_asr_records or report.orphaned_keys or histories:
                logger.info(
                    "cleanup removed expired records",
                    extra={
                        "expiredJobs": len(report.expired_jobs),
                        "expiredAsrRecords": len(report.expired_asr_records),
                        "orphanedFiles": len(report.orphaned_keys),
                        "executionHistories": len(histories),
                        "removedFiles": report.removed_files,
                    },
                )


class ServeLock:
    """One service's hold on its data dir's serve.lock: shared, from its start until it stops.

    A service that gets the lock exclusively knows no other service on the data dir is
    alive, so the unfinished jobs it finds are nobody's and it may recover them; any other
    leaves them to their owner. Every service keeps holding it, so a later start can never
    take the jobs of one that is still running, whoever started first.
    """

    def __init__(self, data: DataDir) -> None:
        self._data = data
        self._held: IO[str] | None = None

    @contextmanager
    def claim(self) -> Iterator[bool]:
        """Take the lock; yield whether this service is the only live one, then hold it shared.

        Starts wait for each other on start.lock until the lock is shared: going from
        exclusive to shared is not atomic, and a start that took it exclusively in between
        would recover again the queued jobs this one has just started.
        """
        self._data.root.mkdir(parents=True, exist_ok=True)
        with self._data.start_lock.open("a") as start:
            fcntl.flock(start, fcntl.LOCK_EX)
            self._held = self._data.serve_lock.open("a")
            try:
                fcntl.flock(self._held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False
            try:
                yield alone
            finally:
                # Never blocks: only a start holding start.lock ever takes it exclusively.
                fcntl.flock(self._held, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None


def _local_transcriber(settings: Settings) -> Transcriber:
    """The provider settings name; faster-whisper in child processes, so that a cancel can end its work."""
    if settings.asr_provider == "whisper":
        return ChildProcessWhisperTranscriber(settings.whisper_model, settings.whisper_threads, settings.asr_timeout_seconds)
    return transcriber_for(settings)


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
        self.data = DataDir.of(settings)
        self.gateway = LocalGateway(host, port)
        self.archive = self.data.execution_archive(SystemClock())
        self.engine = EngineHost(settings, self.archive)
        self.transcriber = transcriber or _local_transcriber(settings)
        self.asr_workers: AsrWorkers | None = None
        self.sweeper: Sweeper | None = None
        self.webhooks: WebhookWorkers | None = None
        self.metrics: PrometheusMetrics | None = None
        self._thread: threading.Thread | None = None
        self._serve_lock = ServeLock(self.data)

    @property
    def base_url(self) -> str:
        return self.gateway.base_url

    def start(self) -> None:
        clock = SystemClock()
        # Signed links name the address the gateway really listens on, unless one is configured.
        public_url = self.settings.public_url or self.base_url
        stores = self.data.stores(clock, public_url)
        self.engine.start()
        self.metrics = PrometheusMetrics(queue_depth=self.engine.asr_queue_depth)
        telemetry = PowertoolsTelemetry(mirror=self.metrics)
        self.webhooks = WebhookWorkers(self.data.webhook_outbox(), self.settings.webhook_workers)
        services = Services(
            **{**stores, "artifacts": TimedArtifactStore(stores["artifacts"], telemetry)},
            workflow=InProcessWorkflow(
                StepFunctionsWorkflow(self.engine.client("stepfunctions"), self.engine.state_machine_arn)
            ),
            transcriber=self.transcriber,
            task_callback=StepFunctionsTaskCallback(self.engine.client("stepfunctions")),
            webhook_queue=self.webhooks,
            webhook_secrets=self.data.webhook_secrets(clock),
            telemetry=telemetry,
            clock=clock,
            limits=limits_from(self.settings),
            work_dir=self.settings.work_dir,
            browser_origins=self.settings.console_origin_set,
            **media_services(self.settings),
        )
        install(services)
        with self._serve_lock.claim() as alone:
            if alone:
                # First: the jobs recovery starts again write to the store at once.
                self._remove_abandoned_writes(stores["artifacts"])
                self._recover_unfinished_jobs(services)
            else:
                logger.warning(
                    "another clipline serve is using this data dir; its unfinished jobs are left to it",
                    extra={"dataDir": str(self.data.root)},
                )
        self.gateway.dependencies = GatewayDependencies(
            keys=self.data.key_store(clock),
            limiter=self.data.rate_limiter(clock, self.settings.job_creations_per_ip_per_minute),
            default_plan=default_usage_plan(self.settings),
            artifacts=stores["artifacts"],
            signer=self.data.signer(),
            now=clock.now,
            telemetry=telemetry,
            metrics=self.metrics,
        )
        self.asr_workers = AsrWorkers(
            self.engine.client("sqs"),
            self.engine.client("stepfunctions"),
            self.engine.asr_queue_url,
            self.settings.asr_workers,
            heartbeat_seconds=self.settings.asr_heartbeat_seconds,
        )
        self.asr_workers.start()
        self.sweeper = Sweeper(services, self.settings.cleanup_interval_seconds, self.archive)
        self.sweeper.start()
        # Messages a previous run left in the outbox go out now, with this run's.
        self.webhooks.start(services)
        self._thread = threading.Thread(target=self.gateway.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        logger.info("local mode started", extra={"url": self.base_url, "dataDir": str(self.data.root)})
        if self.settings.allow_private_sources:
            logger.warning(
                "CLIPLINE_ALLOW_PRIVATE_SOURCES is on: sources on loopback and private networks will be fetched; "
                "use it only for local development and tests"
            )

    @staticmethod
    def _remove_abandoned_writes(artifacts: FilesystemArtifactStore) -> None:
        """Delete the partial files of the writes a previous run was killed in: they would never be finished or removed."""
        removed = artifacts.remove_abandoned_writes()
        if removed:
            logger.warning(
                "removed the partial files of writes a previous run left unfinished",
                extra={"abandonedWrites": len(removed), "paths": removed},
            )

    @staticmethod
    def _recover_unfinished_jobs(services: Services) -> None:
        """Settle the jobs a previous run left unfinished: their executions lived in its memory and died with it.

        Runs before the gateway serves, so none of this run's own jobs exists yet;
        requests that arrive meanwhile wait in the listen queue.
        """
        recovery = interrupt_unfinished_jobs(services, INTERRUPTED_MESSAGE)
        for failure in recovery.failed:
            log_recorded_failure(failure, JobInterruptedError.__name__, None)
        # The failure lines' job keys must not stick to this thread's later lines.
        logger.thread_safe_clear_keys()
        for job_id, error in recovery.unhandled:
            logger.error(
                "could not recover an unfinished job",
                exc_info=error,
                extra={"jobId": job_id, "errorName": type(error).__name__},
            )
        if recovery.failed or recovery.started or recovery.unhandled:
            logger.warning(
                "recovered the jobs a previous run left unfinished",
                extra={
                    "interruptedJobs": len(recovery.failed),
                    "restartedJobs": len(recovery.started),
                    "unrecoveredJobs": len(recovery.unhandled),
                },
            )

    def stop(self) -> None:
        self.gateway.shutdown()
        self.gateway.server_close()
        if self.sweeper is not None:
            self.sweeper.stop()
        if self.webhooks is not None:
            self.webhooks.stop()
        if self.asr_workers is not None:
            self.asr_workers.stop()
        if isinstance(self.transcriber, ChildProcessWhisperTranscriber):
            self.transcriber.close()
        self.engine.stop()
        install(None)
        self._serve_lock.release()

    def __enter__(self) -> "LocalService":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
