"""The ASR worker's use case: transcribe a job's clip, through the transcript cache.

The state machine's Transcribe state puts a request on the ASR queue and waits
for its task token. The worker answers with SendTaskSuccess or SendTaskFailure,
and sends heartbeats while the provider works, so a worker that dies is noticed
within the state's HeartbeatSeconds rather than at the job's global timeout.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import errors
from .asr_jobs import AsrJob, AsrStatus, new_asr_job_id
from .jobs import Job, JobChange, JobError, JobStatus, Stage, TranscriptInfo, overall_progress
from .subtitles import build_cues, render_json, render_srt, render_text, render_vtt
from .transcripts import Transcript
from .use_cases import (
    TRANSCRIPT_ARTIFACTS,
    Services,
    artifact_key,
    artifact_prefix,
    enter_stage,
    exit_stage,
    scratch_folder,
)


@dataclass(frozen=True)
class TaskReport:
    """How a transcription task ended, for the handler to log."""

    outcome: str  # succeeded, failed, or abandoned (the state machine no longer waited)
    job_id: str
    asr_job_id: str | None = None
    error_code: str | None = None
    cache_hit: bool | None = None
    unexpected: BaseException | None = None  # a bug, not one of our errors: the handler logs its traceback


def cache_version(model_version: str, language: str | None) -> str:
    """The version half of the cache key: the model, and the language when one was forced.

    A transcript made with a forced language differs from a detected one, so they
    are cached apart; detection (None) is its own entry.
    """
    return model_version if language is None else f"{model_version};language={language}"


def transcript_cache_prefix(media_hash: str, model_version: str, asr_job_id: str) -> str:
    """Where one ASR record keeps its canonical transcript, which every job that reuses it reads.

    Each record writes under its own id, so a worker that loses the race to finish
    never overwrites the winner's transcript; it deletes its own copy instead. The
    readable slug is lossy, so a digest of the exact model version keeps versions apart.
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_version).strip("-")[:80]
    version_digest = hashlib.sha256(model_version.encode()).hexdigest()[:12]
    return f"transcripts/{slug}-{version_digest}/{media_hash}/{asr_job_id}/"


def transcribe_clip(
    services: Services, job_id: str, clip_key: str, language: str | None, task_token: str
) -> TaskReport:
    """Transcribe the job's clip and report the outcome to the waiting state machine task.

    Every failure is reported with SendTaskFailure under its error class name, which
    the Transcribe state's Retry and Catch match; nothing is raised for it. A task the
    state machine no longer waits for (a stale redelivery, a retried attempt) is dropped.
    """
    callback = services.task_callback
    try:
        callback.heartbeat(task_token)
    except errors.TaskAbandonedError:
        return TaskReport("abandoned", job_id)
    worker = _TranscriptionRun(services, job_id, task_token)
    try:
        output = worker.run(clip_key, language)
        callback.succeed(task_token, output)
        # Counted once the state machine took the result: a refused one ends in FailJob, which counts it.
        services.telemetry.count("AsrTranscriptions", status="succeeded")
        return TaskReport("succeeded", job_id, worker.asr_job_id, cache_hit=output["cacheHit"])
    except (errors.TaskAbandonedError, errors.JobFinishedError) as abandoned:
        # Nobody waits any more: the task timed out, or the job already ended.
        worker.record_failure(abandoned.code, abandoned.message)
        return TaskReport("abandoned", job_id, worker.asr_job_id)
    except Exception as error:  # noqa: BLE001 - every failure must reach the state machine, not only ours
        known = isinstance(error, errors.ClipLineError)
        error_name = type(error).__name__ if known else errors.InternalError.__name__
        message = error.message if known else "an internal error stopped the transcription"
        worker.record_failure(errors.code_for_error_name(error_name), message)
        try:
            callback.fail(task_token, error_name, json.dumps({"errorType": error_name, "errorMessage": message}))
        except errors.TaskAbandonedError:
            return TaskReport("abandoned", job_id, worker.asr_job_id)
        return TaskReport(
            "failed",
            job_id,
            worker.asr_job_id,
            error_code=errors.code_for_error_name(error_name),
            unexpected=None if known else error,
        )


class _TranscriptionRun:
    def __init__(self, services: Services, job_id: str, task_token: str) -> None:
        self._services = services
        self._job_id = job_id
        self._task_token = task_token
        self.asr_job_id: str | None = None

    def run(self, clip_key: str, language: str | None) -> dict:
        services = self._services
        job = enter_stage(services, self._job_id, Stage.TRANSCRIBE)
        with scratch_folder(services, f"asr-{job.id}-") as scratch, _Heartbeat(
            services, job, self._task_token
        ) as heartbeat:
            clip = scratch / "clip.mp4"
            services.artifacts.download(clip_key, clip)
            audio = services.audio_extractor.extract(clip, scratch)
            media_hash = _sha256(audio)
            model_version = cache_version(services.transcriber.model_version(), language)
            transcript, record = self._from_cache(job, media_hash, model_version, language)
            if transcript is None:
                record = self._new_record(job, media_hash, model_version, language, AsrStatus.RUNNING)
                heartbeat.asr_job_id = record.id
                started = time.monotonic()
                transcript = services.transcriber.transcribe(audio, language, heartbeat.progress)
                services.telemetry.observe(
                    "AsrLatency", time.monotonic() - started, provider=services.transcriber.provider
                )
                transcript = self._finish(record, transcript)
        cache_hit = record.status is AsrStatus.REUSED
        services.telemetry.count("AsrCacheHits" if cache_hit else "AsrCacheMisses")
        # The job may have been failed (and its files removed) while we worked; ask before writing under it.
        services.task_callback.heartbeat(self._task_token)
        result_keys = self._store_formats(job, transcript)
        try:
            self._exit(job, record, transcript, result_keys, cache_hit)
        except errors.JobFinishedError:
            self._remove_if_failed(job.id)
            raise errors.TaskAbandonedError(f"job {job.id} finished while it was transcribed") from None
        return {"asrJobId": record.id, "cacheHit": cache_hit, "language": transcript.language, "resultKeys": result_keys}

    def _exit(
        self, job: Job, record: AsrJob, transcript: Transcript, result_keys: dict[str, str], cache_hit: bool
    ) -> None:
        exit_stage(
            self._services,
            job,
            Stage.TRANSCRIBE,
            artifacts={**job.artifacts, **result_keys},
            transcript=TranscriptInfo(
                asr_job_id=record.id,
                provider=transcript.provider,
                model=transcript.model,
                model_version=transcript.model_version,
                language=transcript.language,
                cache_hit=cache_hit,
                segments=len(transcript.segments),
                words=len(transcript.words),
            ),
        )

    def _remove_if_failed(self, job_id: str) -> None:
        """A job that failed, was cancelled or was deleted keeps no artifacts: take back what this run
        wrote after the cleanup ran.

        A job that succeeded is left alone: a stale duplicate run only rewrote its files with the same content.
        """
        if self._services.jobs.get(job_id).status is not JobStatus.SUCCEEDED:
            self._services.artifacts.delete_prefix(artifact_prefix(job_id))

    def _new_record(
        self, job: Job, media_hash: str, model_version: str, language: str | None, status: AsrStatus, **extra: object
    ) -> AsrJob:
        services = self._services
        now = services.clock.now()
        record = AsrJob(
            id=new_asr_job_id(),
            job_id=job.id,
            media_hash=media_hash,
            provider=services.transcriber.provider,
            model=services.transcriber.model,
            model_version=model_version,
            language=language,
            status=status,
            created_at=now,
            updated_at=now,
            last_heartbeat_at=now,
            expires_at=job.expires_at,
            **extra,
        )
        services.asr_jobs.create(record)
        self.asr_job_id = record.id
        return record

    def _from_cache(
        self, job: Job, media_hash: str, model_version: str, language: str | None
    ) -> tuple[Transcript | None, AsrJob | None]:
        entry = self._services.asr_jobs.find_cached(media_hash, model_version)
        if entry is None or entry.transcript_key is None:
            return None, None
        transcript = self._load(entry.transcript_key)
        if transcript is None:
            return None, None
        # Expiry extension, not reference counting: the shared entry lives as long as its longest-lived user.
        self._services.asr_jobs.extend(entry.id, job.expires_at)
        record = self._new_record(
            job,
            media_hash,
            model_version,
            language,
            AsrStatus.REUSED,
            transcript_key=entry.transcript_key,
            cache_entry_id=entry.id,
        )
        return transcript, record

    def _load(self, key: str) -> Transcript | None:
        try:
            return Transcript.model_validate_json(self._services.artifacts.read_bytes(key))
        except errors.ArtifactNotFoundError:
            return None  # the entry outlived its transcript; transcribe again

    def _finish(self, record: AsrJob, transcript: Transcript) -> Transcript:
        services = self._services
        prefix = transcript_cache_prefix(record.media_hash, record.model_version, record.id)
        services.artifacts.put_bytes(f"{prefix}transcript.json", render_json(transcript).encode(), "application/json")
        entry = services.asr_jobs.finish(record.id, f"{prefix}transcript.json", services.clock.now())
        if entry.id == record.id:
            return transcript
        # Another worker finished the same audio first; every job on it shows that one transcript.
        services.artifacts.delete_prefix(prefix)
        return self._load(entry.transcript_key) or transcript

    def _store_formats(self, job: Job, transcript: Transcript) -> dict[str, str]:
        cues = build_cues(transcript)
        contents = {
            "srt": render_srt(cues),
            "vtt": render_vtt(cues),
            "txt": render_text(transcript),
            "json": render_json(transcript),
        }
        keys = {}
        for name, (file_name, content_type) in TRANSCRIPT_ARTIFACTS.items():
            stored = self._services.artifacts.put_bytes(
                artifact_key(job.id, file_name), contents[name].encode(), content_type
            )
            keys[name] = stored.key
        return keys

    def record_failure(self, code: str, message: str) -> None:
        if self.asr_job_id is not None:
            try:
                self._services.asr_jobs.fail(self.asr_job_id, JobError(code=code, message=message), self._services.clock.now())
            except errors.ClipLineError:
                pass  # the state machine hears of the failure all the same; the record is only history


class _Heartbeat:
    """While the worker runs: tell the state machine, the ASR record and the job that it is alive.

    Beats come from a thread, because a provider call can run for minutes without
    returning. If the state machine says the task no longer waits, the run is
    pointless: the next beat raises TaskAbandonedError in the worker via ``progress``.
    """

    def __init__(self, services: Services, job: Job, task_token: str) -> None:
        self._services = services
        self._job = job
        self._task_token = task_token
        self._fraction = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_until_stopped, name=f"heartbeat-{job.id}", daemon=True)
        self.asr_job_id: str | None = None
        self.abandoned = False

    def progress(self, fraction: float) -> None:
        self._fraction = fraction
        if self.abandoned:
            raise errors.TaskAbandonedError("the state machine stopped waiting for this transcription")

    def _beat(self) -> None:
        services = self._services
        now = services.clock.now()
        try:
            services.task_callback.heartbeat(self._task_token)
            if self.asr_job_id is not None:
                services.asr_jobs.heartbeat(self.asr_job_id, now)
            services.jobs.update(
                self._job.id,
                JobChange(
                    progress=overall_progress(Stage.TRANSCRIBE, self._fraction, self._job.request),
                    last_heartbeat_at=now,
                ),
            )
        except (errors.TaskAbandonedError, errors.JobFinishedError):
            self.abandoned = True

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(self._services.limits.heartbeat_interval_seconds):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - a busy store or a network blip: the next beat tries again
                # A thread that died here would let the task time out and the whole transcription run again.
                self._services.telemetry.count("AsrHeartbeatFailures")

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
