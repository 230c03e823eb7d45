"""Test fakes for every port: in-memory, deterministic, and held to the same contract suites."""

from __future__ import annotations

import io
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Collection

from clipline.adapters.aws.dynamo_job_repository import LISTING_KEY_ATTRIBUTE, OWNER_INDEX
from clipline.domain.asr_jobs import AsrJob, AsrStatus, new_asr_job_id
from clipline.domain.errors import (
    ArtifactNotFoundError,
    AsrJobNotFoundError,
    IdempotencyKeyReusedError,
    JobNotFoundError,
    TaskAbandonedError,
    UploadNotFoundError,
)
from clipline.domain.job_listing import JobPage, listing_key
from clipline.domain.jobs import Job, JobChange, JobError, JobStatus, apply_change, deleted, with_webhook
from clipline.domain.ports import IdempotencyClaim, SignedUpload, StoredArtifact, StoredObject
from clipline.domain.uploads import Upload
from clipline.domain.webhooks import Webhook
from clipline.metric_catalog import MetricKind, definition_of
from clipline.observability import logger


def create_moto_jobs_table(client, name: str = "jobs") -> None:
    """The jobs table as the stack makes it: one string partition key, ``pk``, and the ByOwner index. Call inside mock_aws()."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": attribute, "AttributeType": "S"} for attribute in ("pk", "owner", LISTING_KEY_ATTRIBUTE)
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": OWNER_INDEX,
                "KeySchema": [
                    {"AttributeName": "owner", "KeyType": "HASH"},
                    {"AttributeName": LISTING_KEY_ATTRIBUTE, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def an_asr_record(
    now: datetime,
    *,
    job_id: str = "job-1",
    media_hash: str = "a" * 64,
    model_version: str = "fake-1",
    status: AsrStatus = AsrStatus.RUNNING,
    **extra: object,
) -> AsrJob:
    """An ASR record as the fake provider's worker stores one, kept for the default week."""
    fields: dict[str, object] = {"id": new_asr_job_id(), **extra}
    return AsrJob(
        job_id=job_id,
        media_hash=media_hash,
        provider="fake",
        model="fake",
        model_version=model_version,
        status=status,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(days=7),
        **fields,
    )


class FixedClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


class InMemoryJobRepository:
    def __init__(self, now) -> None:  # noqa: ANN001
        self._now = now
        self._jobs: dict[str, Job] = {}
        self._claims: dict[tuple[str, str], tuple[IdempotencyClaim, str]] = {}
        self._lock = threading.Lock()

    def create(self, job: Job, claim: IdempotencyClaim | None = None) -> Job:
        with self._lock:
            if claim is not None:
                existing = self._claims.get((claim.owner, claim.key))
                if existing and existing[0].expires_at > self._now():
                    if existing[0].request_hash != claim.request_hash:
                        raise IdempotencyKeyReusedError("key reused with a different request")
                    if existing[1] in self._jobs:
                        return self._jobs[existing[1]]
                self._claims[(claim.owner, claim.key)] = (claim, job.id)
            self._jobs[job.id] = job
            return job

    def get(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFoundError(f"job {job_id} not found") from None

    def update(self, job_id: str, change: JobChange) -> Job:
        with self._lock:
            job = apply_change(self.get(job_id), change, self._now())
            self._jobs[job_id] = job
            return job

    def missing(self, job_ids: Collection[str]) -> set[str]:
        return set(job_ids) - self._jobs.keys()

    def list_expired(self, now: datetime, limit: int) -> list[Job]:
        return [job for job in list(self._jobs.values()) if job.expires_at <= now][:limit]

    def list_unfinished(self, limit: int) -> list[Job]:
        return [job for job in list(self._jobs.values()) if not job.status.is_terminal][:limit]

    def list_owned(self, owner: str, *, status: JobStatus | None, limit: int, after: str | None) -> JobPage:
        owned = sorted(
            (job for job in list(self._jobs.values()) if job.owner == owner and status in (None, job.status)),
            key=listing_key,
            reverse=True,
        )
        following = [job for job in owned if after is None or listing_key(job) < after]
        page = tuple(following[:limit])
        return JobPage(jobs=page, next_after=listing_key(page[-1]) if len(following) > limit else None)

    def record_webhook(self, job_id: str, webhook: Webhook) -> Job:
        with self._lock:
            job = with_webhook(self.get(job_id), webhook)
            self._jobs[job_id] = job
            return job

    def mark_deleted(self, job_id: str) -> Job:
        with self._lock:
            job = deleted(self.get(job_id), self._now())
            self._jobs[job_id] = job
            return job

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)
            for key, (_, claimed_job) in list(self._claims.items()):
                if claimed_job == job_id:
                    del self._claims[key]


class InMemoryAsrJobRepository:
    def __init__(self) -> None:
        self.records: dict[str, AsrJob] = {}
        self._lock = threading.Lock()

    def create(self, record: AsrJob) -> None:
        with self._lock:
            self.records[record.id] = record

    def get(self, asr_job_id: str) -> AsrJob:
        try:
            return self.records[asr_job_id]
        except KeyError:
            raise AsrJobNotFoundError(f"ASR job {asr_job_id} not found") from None

    def _update_if_running(self, asr_job_id: str, **changes: object) -> None:
        with self._lock:
            record = self.get(asr_job_id)
            if record.status is AsrStatus.RUNNING:
                self.records[asr_job_id] = record.model_copy(update=changes)

    def heartbeat(self, asr_job_id: str, at: datetime) -> None:
        self._update_if_running(asr_job_id, last_heartbeat_at=at, updated_at=at)

    def list_expired(self, now: datetime, limit: int) -> list[AsrJob]:
        return [record for record in list(self.records.values()) if record.expires_at <= now][:limit]

    def delete(self, asr_job_id: str) -> None:
        with self._lock:
            self.records.pop(asr_job_id, None)

    def extend(self, asr_job_id: str, expires_at: datetime) -> None:
        with self._lock:
            self.records[asr_job_id] = self.get(asr_job_id).kept_until(expires_at)

    def find_cached(self, media_hash: str, model_version: str) -> AsrJob | None:
        for record in list(self.records.values()):
            if (record.media_hash, record.model_version, record.status) == (media_hash, model_version, AsrStatus.DONE):
                return record
        return None

    def finish(self, asr_job_id: str, transcript_key: str, at: datetime) -> AsrJob:
        with self._lock:
            record = self.get(asr_job_id)
            winner = self.find_cached(record.media_hash, record.model_version)
            if winner is None:
                winner = record.finished(transcript_key, at)
                self.records[asr_job_id] = winner
            else:
                self.records[asr_job_id] = record.superseded_by(winner, at)
            return winner

    def fail(self, asr_job_id: str, error: JobError, at: datetime) -> None:
        with self._lock:
            record = self.get(asr_job_id)
            if record.status is AsrStatus.RUNNING:
                self.records[asr_job_id] = record.failed(error, at)


class InMemoryArtifactStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail_puts = 0

    def put_file(self, key: str, path: Path, content_type: str) -> StoredArtifact:
        data = path.read_bytes()
        self.objects[key] = data
        return StoredArtifact(key=key, size_bytes=len(data), content_type=content_type)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredArtifact:
        self.objects[key] = data
        return StoredArtifact(key=key, size_bytes=len(data), content_type=content_type)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise ArtifactNotFoundError(f"no artifact {key}") from None

    def download(self, key: str, destination: Path) -> None:
        destination.write_bytes(self.read_bytes(key))

    def exists(self, key: str) -> bool:
        return key in self.objects

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(key for key in self.objects if key.startswith(prefix))

    def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self.objects if key.startswith(prefix)]
        for key in doomed:
            del self.objects[key]
        return len(doomed)

    def signed_url(self, key: str, expires_at: datetime) -> str:
        return f"memory://{key}?expires={int(expires_at.timestamp())}"

    def signed_upload(self, key: str, content_type: str, size_bytes: int, expires_at: datetime) -> SignedUpload:
        url = f"memory://{key}?expires={int(expires_at.timestamp())}&type={content_type}&size={size_bytes}"
        return SignedUpload(url=url, headers={"Content-Type": content_type, "Content-Length": str(size_bytes)})

    def stat(self, key: str) -> StoredObject | None:
        return StoredObject(size_bytes=len(self.objects[key]), content_type=None) if key in self.objects else None

    def source_location(self, key: str, expires_at: datetime) -> str:
        return f"memory://{key}"


class InMemoryUploadRepository:
    def __init__(self) -> None:
        self.uploads: dict[str, Upload] = {}

    def create(self, upload: Upload) -> None:
        self.uploads[upload.id] = upload

    def get(self, upload_id: str) -> Upload:
        try:
            return self.uploads[upload_id]
        except KeyError:
            raise UploadNotFoundError(f"upload {upload_id} not found") from None

    def delete(self, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)

    def list_expired(self, now: datetime, limit: int) -> list[Upload]:
        return [upload for upload in list(self.uploads.values()) if upload.expires_at <= now][:limit]


class RecordingWorkflow:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.started: list[tuple[str, str]] = []
        self.stopped: list[tuple[str, str]] = []
        self.fail_with = fail_with

    def start(self, job: Job) -> str:
        if self.fail_with:
            raise self.fail_with
        self.started.append((job.id, job.correlation_id))
        return f"arn:aws:states:us-east-1:123456789012:execution:clipline-pipeline:{job.id}"

    def stop(self, job_id: str, cause: str) -> None:
        if self.fail_with:
            raise self.fail_with
        self.stopped.append((job_id, cause))


class RecordingTaskCallback:
    """Records task-token calls; ``abandon_after_beats`` makes later calls raise TaskAbandonedError."""

    def __init__(self, abandon_after_beats: int | None = None) -> None:
        self.beats = 0
        self.succeeded: list[dict] = []
        self.failed: list[tuple[str, str]] = []
        self.abandon_after_beats = abandon_after_beats
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.abandon_after_beats is not None and self.beats > self.abandon_after_beats:
            raise TaskAbandonedError("the task timed out")

    def heartbeat(self, task_token: str) -> None:
        with self._lock:
            self.beats += 1
            self._check()

    def succeed(self, task_token: str, output: dict) -> None:
        self._check()
        self.succeeded.append(output)

    def fail(self, task_token: str, error_name: str, cause: str) -> None:
        self._check()
        self.failed.append((error_name, cause))


class ToneAudioExtractor:
    """Writes a WAV whose samples depend only on the media file's bytes, as real extraction does."""

    def extract(self, media: Path, work_dir: Path) -> Path:
        import wave

        output = work_dir / "speech.wav"
        seed = sum(media.read_bytes()) % 251
        with wave.open(str(output), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(16000)
            wav.writeframes(bytes([seed, 0]) * 16000 * 3)
        return output


class RecordingTelemetry:
    def __init__(self) -> None:
        self.points: list[tuple[str, float, dict[str, str]]] = []

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        self._record(MetricKind.COUNTER, name, value, dimensions)

    def observe(self, name: str, value: float, **dimensions: str) -> None:
        self._record(MetricKind.HISTOGRAM, name, value, dimensions)

    def _record(self, kind: MetricKind, name: str, value: float, dimensions: dict[str, str]) -> None:
        # Held to the catalog like the real telemetry, so a test cannot pass on a metric production refuses.
        definition_of(name, kind, dimensions)
        self.points.append((name, value, dimensions))

    def total(self, name: str, **dimensions: str) -> float:
        return sum(v for n, v, d in self.points if n == name and all(d.get(k) == w for k, w in dimensions.items()))


class AllowAllSourceGuard:
    def check(self, url: str) -> None:
        return None


def fake_services(clock: FixedClock, **overrides: object):  # noqa: ANN201 - Services, imported lazily
    """Services wired entirely from fakes; ``overrides`` replaces any of them."""
    from clipline.domain.use_cases import Limits, Services

    wiring: dict[str, object] = {
        "jobs": InMemoryJobRepository(clock.now),
        "artifacts": InMemoryArtifactStore(),
        "workflow": RecordingWorkflow(),
        "source_guard": AllowAllSourceGuard(),
        "prober": None,
        "clipper": None,
        "telemetry": RecordingTelemetry(),
        "clock": clock,
        "limits": Limits(max_clip_seconds=600, retention=timedelta(days=7), signed_url_ttl=timedelta(hours=1)),
    }
    return Services(**{**wiring, **overrides})


class CapturedLogs:
    """Every log line, as JSON, formatted by the service's own Powertools formatter in the emitting thread."""

    def __init__(self) -> None:
        self._stream = io.StringIO()
        self._handler = logging.StreamHandler(self._stream)
        self._handler.setFormatter(logger.registered_formatter)

    def __enter__(self) -> "CapturedLogs":
        logger.addHandler(self._handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logger.removeHandler(self._handler)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self._stream.getvalue().splitlines() if line.strip()]
