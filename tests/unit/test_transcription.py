"""The ASR worker's use case with fakes: cache keys, reporting to the task token, heartbeats, abandonment."""

import dataclasses
import json
from datetime import timedelta

import pytest

from clipline.asr.fake import FakeTranscriber
from clipline.domain.asr_jobs import AsrStatus
from clipline.domain.jobs import ClipRequest, JobChange, JobStatus, Stage, new_job
from clipline.domain.transcription import cache_version, transcribe_clip, transcript_cache_prefix
from clipline.domain.use_cases import fail_job
from tests.fakes import (
    FixedClock,
    InMemoryAsrJobRepository,
    RecordingTaskCallback,
    ToneAudioExtractor,
    fake_services,
)


@pytest.fixture
def clock():
    return FixedClock()


def services_with(clock, transcriber=None, callback=None, **overrides):
    return fake_services(
        clock,
        asr_jobs=InMemoryAsrJobRepository(),
        transcriber=transcriber or FakeTranscriber(),
        audio_extractor=ToneAudioExtractor(),
        task_callback=callback or RecordingTaskCallback(),
        **overrides,
    )


def clipped_job(services, clock, clip_bytes=b"clip-a", language=None):
    """A job whose clip stage is done, as the Transcribe state finds it."""
    request = ClipRequest(
        source_url="https://example.com/a.mp4", start_seconds=0, end_seconds=3, transcribe=True, language=language
    )
    job = services.jobs.create(new_job(request, "key-1", "cid", clock.now(), timedelta(days=7)))
    key = f"jobs/{job.id}/clip.mp4"
    services.artifacts.put_bytes(key, clip_bytes, "video/mp4")
    services.jobs.update(job.id, JobChange(status=JobStatus.RUNNING, stage=Stage.CLIP, artifacts={"clip": key}))
    return job.id, key


def test_a_transcription_reports_success_with_the_transcript_keys(clock):
    services = services_with(clock)
    job_id, clip_key = clipped_job(services, clock)
    report = transcribe_clip(services, job_id, clip_key, None, "token")
    assert report.outcome == "succeeded" and report.cache_hit is False
    [output] = services.task_callback.succeeded
    assert set(output["resultKeys"]) == {"srt", "vtt", "txt", "json"}
    job = services.jobs.get(job_id)
    assert job.artifacts["srt"] == f"jobs/{job_id}/transcript.srt" and job.transcript.words > 0
    assert services.artifacts.exists(job.artifacts["json"])


def test_a_forced_language_is_cached_apart_from_detection(clock):
    # Given one clip transcribed with detection
    transcriber = FakeTranscriber()
    services = services_with(clock, transcriber)
    transcribe_clip(services, *clipped_job(services, clock), None, "t1")
    # When the same audio is asked for in German, then in German again
    transcribe_clip(services, *clipped_job(services, clock, language="de"), "de", "t2")
    third = transcribe_clip(services, *clipped_job(services, clock, language="de"), "de", "t3")
    # Then German was transcribed once, and its second request was a hit
    assert transcriber.calls == 2 and third.cache_hit is True
    assert cache_version("fake-1", "de") == "fake-1;language=de"
    prefix = transcript_cache_prefix("ab", "faster-whisper/base;language=de", "r1")
    assert prefix.startswith("transcripts/faster-whisper-base-language-de-") and prefix.endswith("/ab/r1/")
    # Versions that slug alike still get their own place.
    assert transcript_cache_prefix("ab", "a/b", "r1") != transcript_cache_prefix("ab", "a b", "r1")


def test_a_job_failed_while_transcribing_keeps_no_transcript_files(clock):
    # Given the state machine fails the job (global timeout) while the provider works
    services = services_with(clock)
    job_id, clip_key = clipped_job(services, clock)

    class FailsTheJobMidway(FakeTranscriber):
        def transcribe(self, audio, language, on_progress):
            fail_job(services, job_id, "JobTimeoutError", None)
            return super().transcribe(audio, language, on_progress)

    services = dataclasses.replace(services, transcriber=FailsTheJobMidway())
    # When the worker finishes after that
    report = transcribe_clip(services, job_id, clip_key, None, "token")
    # Then it stores nothing under the failed job and reports nothing to the state machine
    assert report.outcome == "abandoned" and services.task_callback.succeeded == []
    assert [key for key in services.artifacts.objects if key.startswith(f"jobs/{job_id}/")] == []
    assert services.jobs.get(job_id).status is JobStatus.FAILED


def test_the_loser_of_a_finishing_race_removes_its_own_cached_copy(clock):
    # Given a finished cache entry for the audio, made while a second worker was still transcribing it
    services = services_with(clock)
    first_job = clipped_job(services, clock)

    class FinishesSecond(FakeTranscriber):
        def transcribe(self, audio, language, on_progress):
            transcript = super().transcribe(audio, language, on_progress)
            if self.calls == 1:
                transcribe_clip(services, *first_job, None, "winner")
            return transcript

    services = dataclasses.replace(services, transcriber=FinishesSecond())
    transcribe_clip(services, *clipped_job(services, clock), None, "loser")
    # Then one canonical transcript is stored, the winner's, and both jobs succeeded
    cached = [key for key in services.artifacts.objects if key.startswith("transcripts/")]
    statuses = sorted(record.status.value for record in services.asr_jobs.records.values())
    assert statuses == ["done", "superseded"] and len(cached) == 1
    assert len(services.task_callback.succeeded) == 2


def test_a_stale_request_is_dropped_without_work(clock):
    # Given the state machine no longer waits for the token
    transcriber = FakeTranscriber()
    services = services_with(clock, transcriber, RecordingTaskCallback(abandon_after_beats=0))
    job_id, clip_key = clipped_job(services, clock)
    # Then nothing is transcribed or stored
    assert transcribe_clip(services, job_id, clip_key, None, "old-token").outcome == "abandoned"
    assert transcriber.calls == 0 and services.asr_jobs.records == {}


def test_a_provider_failure_is_reported_under_its_class_name_with_the_message(clock):
    services = services_with(clock, FakeTranscriber(failure="rejected"))
    job_id, clip_key = clipped_job(services, clock)
    report = transcribe_clip(services, job_id, clip_key, None, "token")
    assert (report.outcome, report.error_code) == ("failed", "VALIDATION_FAILED")
    [(error_name, cause)] = services.task_callback.failed
    assert error_name == "TranscriptionRejectedError"
    assert "simulated refusal" in json.loads(cause)["errorMessage"]
    [record] = services.asr_jobs.records.values()
    assert record.status is AsrStatus.FAILED and record.error.code == "VALIDATION_FAILED"


def test_a_bug_is_reported_as_internal_error_without_internals(clock):
    class BrokenTranscriber(FakeTranscriber):
        def transcribe(self, audio, language, on_progress):
            raise KeyError("segments")

    services = services_with(clock, BrokenTranscriber())
    report = transcribe_clip(services, *clipped_job(services, clock), None, "token")
    assert report.error_code == "INTERNAL_ERROR" and isinstance(report.unexpected, KeyError)
    [(error_name, cause)] = services.task_callback.failed
    assert error_name == "InternalError" and "segments" not in cause


def test_heartbeats_flow_while_the_provider_works_and_stop_an_abandoned_run(clock):
    # Given a provider that works for 0.6 s, beats every 0.05 s, and a task that times out after 3 beats
    callback = RecordingTaskCallback(abandon_after_beats=3)
    services = services_with(clock, FakeTranscriber(hang_seconds=0.6), callback)
    services = dataclasses.replace(services, limits=dataclasses.replace(services.limits, heartbeat_interval_seconds=0.05))
    job_id, clip_key = clipped_job(services, clock)
    # When it runs
    report = transcribe_clip(services, job_id, clip_key, None, "token")
    # Then the beats went out until the state machine stopped waiting, and the run gave up
    assert callback.beats > 3
    assert report.outcome == "abandoned" and callback.succeeded == []
    [record] = services.asr_jobs.records.values()
    assert record.status is AsrStatus.FAILED and record.error.code == "TASK_ABANDONED"
    assert services.jobs.get(job_id).last_heartbeat_at is not None
