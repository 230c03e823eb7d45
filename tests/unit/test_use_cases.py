"""Use cases against fakes: validation, idempotency, results and failure handling."""

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from clipline.domain import errors, use_cases
from clipline.domain.jobs import ClipInfo, JobChange, JobStatus, SourceInfo, Stage
from clipline.domain.ports import ClipOutcome
from clipline.domain.use_cases import (
    NewJobRequest,
    clip_source,
    create_job,
    fail_job,
    finalize_job,
    get_job,
    enter_stage,
    get_job_result,
    interrupt_unfinished_jobs,
    probe_source,
    record_execution_end,
)
from tests.fakes import FixedClock, InMemoryArtifactStore, RecordingWorkflow, fake_services

SOURCE = SourceInfo(duration_seconds=180.0, has_video=True, has_audio=True, frame_rate=25.0)


class FakeProber:
    def __init__(self, info=SOURCE, error=None):
        self.info, self.error = info, error

    def probe(self, url, from_storage=False):
        if self.error:
            raise self.error
        return self.info


class FakeClipper:
    """Writes a small file and reports a re-encode fallback, as the real one does when copy fails."""

    def clip(self, request, source, work_dir: Path, on_progress):
        on_progress(0.5)
        path = work_dir / "clip.mp4"
        path.write_bytes(b"clip")
        info = ClipInfo(duration_seconds=request.duration_seconds, size_bytes=4, method="reencode", fallback_reason="copy_failed")
        return ClipOutcome(path, info)


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture
def services(clock, tmp_path):
    return fake_services(clock, prober=FakeProber(), clipper=FakeClipper(), work_dir=tmp_path)


def submit(services, start="00:01:00", end=70.5, key=None, owner="key-1", url="https://example.com/a.mp4"):
    return create_job(services, NewJobRequest(url, start, end), owner=owner, correlation_id="cid-1", idempotency_key=key)


def run_pipeline(services, job_id):
    probe_source(services, job_id)
    clip_source(services, job_id)
    return finalize_job(services, job_id)


def test_create_stores_a_queued_job_and_starts_its_execution(services):
    job = submit(services)
    assert job.status is JobStatus.QUEUED
    assert (job.request.start_seconds, job.request.end_seconds) == (60.0, 70.5)
    assert services.workflow.started == [(job.id, "cid-1")]
    assert services.telemetry.total("JobsCreated") == 1


@pytest.mark.parametrize(
    ("start", "end", "error"),
    [
        (10, 10, errors.InvalidTimeRangeError),
        (20, 10, errors.InvalidTimeRangeError),
        (-1, 10, errors.InvalidTimeRangeError),
        ("abc", 10, errors.InvalidTimecodeError),
        (0, 601, errors.ClipTooLongError),
    ],
)
def test_invalid_ranges_store_nothing(services, start, end, error):
    with pytest.raises(error):
        submit(services, start=start, end=end)
    assert services.workflow.started == []


def test_same_idempotency_key_and_body_returns_the_same_job(services):
    first = submit(services, key="k1")
    services.jobs.update(first.id, JobChange(status=JobStatus.RUNNING))
    again = submit(services, key="k1")
    assert again.id == first.id
    assert len(services.workflow.started) == 1


SRT = "1\n00:00:00,500 --> 00:00:02,000\nHello\n"


def submit_with_subtitles(services, key):
    request = NewJobRequest("https://example.com/a.mp4", 60, 70, burn_subtitles=True, subtitles_srt=SRT)
    return create_job(services, request, owner="key-1", correlation_id="cid-1", idempotency_key=key)


class CrashingOnceArtifactStore(InMemoryArtifactStore):
    """The process dies (any exception) on the first write, as a Lambda that times out would."""

    def __init__(self):
        super().__init__()
        self.crashed = False

    def put_bytes(self, key, data, content_type):
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("the process died")
        return super().put_bytes(key, data, content_type)


def test_a_replay_after_a_crash_stores_the_subtitles_before_starting(services):
    # Given a create whose process died after storing the job, before storing its subtitles
    services = dataclasses.replace(services, artifacts=CrashingOnceArtifactStore())
    with pytest.raises(RuntimeError):
        submit_with_subtitles(services, key="k1")
    assert services.workflow.started == []
    # When the client retries with the same Idempotency-Key
    job = submit_with_subtitles(services, key="k1")
    # Then the same job is started, with its subtitles stored
    assert services.workflow.started == [(job.id, "cid-1")]
    assert services.artifacts.read_bytes(f"jobs/{job.id}/subtitles.srt").decode().startswith("1\n00:00:00,500")


def test_a_job_with_subtitles_whose_pipeline_cannot_start_leaves_nothing(services):
    services = dataclasses.replace(services, workflow=RecordingWorkflow(errors.ServiceUnavailableError("down")))
    with pytest.raises(errors.ServiceUnavailableError):
        submit_with_subtitles(services, key="k1")
    assert services.jobs._jobs == {} and services.artifacts.list_keys("jobs/") == []


def test_same_idempotency_key_with_another_body_is_refused(services):
    submit(services, key="k1")
    with pytest.raises(errors.IdempotencyKeyReusedError):
        submit(services, key="k1", end=75)


def test_idempotency_keys_are_per_api_key(services):
    assert submit(services, key="k1", owner="a").id != submit(services, key="k1", owner="b").id


def test_a_job_whose_pipeline_cannot_start_is_removed(services):
    services = dataclasses.replace(services, workflow=RecordingWorkflow(errors.ServiceUnavailableError("down")))
    with pytest.raises(errors.ServiceUnavailableError):
        submit(services, key="k1")
    assert services.jobs._jobs == {} and services.jobs._claims == {}


def test_pipeline_success_records_clip_fallback_and_metrics(services):
    job = submit(services)
    done = run_pipeline(services, job.id)
    assert (done.status, done.stage, done.progress) == (JobStatus.SUCCEEDED, "done", 100)
    assert done.clip.method == "reencode" and done.artifacts == {"clip": f"jobs/{job.id}/clip.mp4"}
    assert services.telemetry.total("FfmpegFallback", reason="copy_failed") == 1
    assert services.telemetry.total("ProcessedClipSeconds") == pytest.approx(10.5)
    assert [e.type for e in done.events] == [
        "stageEntered", "stageExited", "stageEntered", "stageExited", "stageEntered", "jobSucceeded",
    ]  # fmt: skip


class SlowFailingClipper:
    """Takes ``seconds`` on the clock, then fails, as a step that the state machine retries."""

    def __init__(self, clock, seconds):
        self.clock, self.seconds = clock, seconds

    def clip(self, request, source, work_dir, on_progress):
        self.clock.advance(seconds=self.seconds)
        raise errors.SourceUnreachableError("connection reset")


def test_events_name_the_state_its_attempt_and_duration(services, clock):
    # Given a job whose clip step fails once after 3 s, is retried, and then takes 2 s
    job = submit(services)
    probe_source(services, job.id)
    with pytest.raises(errors.SourceUnreachableError):
        clip_source(dataclasses.replace(services, clipper=SlowFailingClipper(clock, 3)), job.id)

    class SlowClipper(FakeClipper):
        def clip(self, *args):
            clock.advance(seconds=2)
            return super().clip(*args)

    clip_source(dataclasses.replace(services, clipper=SlowClipper()), job.id)
    clock.advance(seconds=0.5)
    done = finalize_job(services, job.id)
    # Then the events read like the execution history: state, attempt, and duration on the event ending a run
    assert [(e.type, e.state, e.attempt, e.duration_seconds) for e in done.events] == [
        ("stageEntered", "ProbeSource", 1, None),
        ("stageExited", "ProbeSource", 1, 0.0),
        ("stageEntered", "ClipSource", 1, None),
        ("stageEntered", "ClipSource", 2, None),
        ("stageExited", "ClipSource", 2, 2.0),
        ("stageEntered", "FinalizeJob", 1, None),
        ("jobSucceeded", "FinalizeJob", 1, 0.0),
    ]
    # And the job's duration was measured from its creation
    assert services.telemetry.total("JobDuration", outcome="succeeded") == pytest.approx(5.5)


def test_a_failure_event_times_the_state_that_failed(services, clock):
    # Given a job whose clip step ran 4 s before the state machine gave up on it
    job = submit(services)
    probe_source(services, job.id)
    with pytest.raises(errors.SourceUnreachableError):
        clip_source(dataclasses.replace(services, clipper=SlowFailingClipper(clock, 4)), job.id)
    # When FailJob records it
    failed = fail_job(services, job.id, "SourceUnreachableError", None).job
    # Then the failure names the state, its attempt and how long it ran, with the code
    last = failed.events[-1]
    assert (last.type, last.state, last.attempt, last.duration_seconds, last.code) == (
        "jobFailed", "ClipSource", 1, 4.0, "SOURCE_UNREACHABLE",
    )  # fmt: skip
    assert services.telemetry.total("JobsFailed", errorCode="SOURCE_UNREACHABLE") == 1


def test_a_range_shorter_than_a_microsecond_is_refused(services):
    with pytest.raises(errors.InvalidTimeRangeError):
        submit(services, start=5.0, end=5.0000001)


def test_range_past_the_source_end_fails_the_probe(services):
    job = submit(services, start=175, end=181)
    with pytest.raises(errors.RangeOutsideSourceError):
        probe_source(services, job.id)


def test_fail_job_records_the_code_and_removes_partial_artifacts(services):
    job = submit(services)
    probe_source(services, job.id)
    clip_source(services, job.id)
    failed = fail_job(services, job.id, "StorageUnavailableError", '{"errorMessage": "disk gone"}').job
    assert failed.status is JobStatus.FAILED
    assert (failed.error.code, failed.error.message) == ("STORAGE_FAILURE", "disk gone")
    assert failed.artifacts == {} and services.artifacts.objects == {}
    assert services.telemetry.total("JobsFailed", errorCode="STORAGE_FAILURE") == 1
    # Failing again (a retried Catch) changes nothing
    again = fail_job(services, job.id, "InternalError", None)
    assert again.job == failed and not again.newly_failed


def test_internal_errors_do_not_leak_details(services):
    job = submit(services)
    failed = fail_job(services, job.id, "KeyError", '{"errorMessage": "secret internals"}').job
    assert failed.error.code == "INTERNAL_ERROR" and "secret" not in failed.error.message


def test_execution_timeout_fails_an_unfinished_job_once(services):
    job = submit(services)
    record_execution_end(services, job.id, "TIMED_OUT", None, None)
    assert services.jobs.get(job.id).error.code == "JOB_TIMEOUT"
    done = submit(services, end=80)
    run_pipeline(services, done.id)
    record_execution_end(services, done.id, "TIMED_OUT", None, None)
    assert services.jobs.get(done.id).status is JobStatus.SUCCEEDED


def test_result_lifecycle_409_then_links_then_410(services, clock):
    job = submit(services)
    with pytest.raises(errors.JobNotReadyError):
        get_job_result(services, job.id, "key-1")
    run_pipeline(services, job.id)
    result = get_job_result(services, job.id, "key-1")
    assert [link.name for link in result.links] == ["clip"]
    assert result.links[0].expires_at == clock.now() + timedelta(hours=1)
    clock.advance(days=7)
    with pytest.raises(errors.ResultExpiredError):
        get_job_result(services, job.id, "key-1")


def test_links_never_outlive_the_job(services, clock):
    job = submit(services)
    run_pipeline(services, job.id)
    clock.advance(days=7, minutes=-10)
    assert get_job_result(services, job.id, "key-1").links[0].expires_at == job.expires_at


def test_failed_jobs_have_no_result(services):
    job = submit(services)
    fail_job(services, job.id, "SourceNotFoundError", None)
    with pytest.raises(errors.JobFailedError, match="SOURCE_NOT_FOUND"):
        get_job_result(services, job.id, "key-1")


def test_another_keys_job_is_not_found(services):
    job = submit(services, owner="a")
    with pytest.raises(errors.JobNotFoundError):
        get_job(services, job.id, "b")


def test_a_job_may_ask_for_a_shorter_retention_but_not_a_longer_one(services, clock):
    # Given the service keeps jobs 7 days
    request = NewJobRequest("https://example.com/a.mp4", 1, 2, retention_seconds=3600)
    # When a job asks for an hour, it expires in an hour
    job = create_job(services, request, owner="key-1", correlation_id="cid")
    assert job.expires_at == clock.now() + timedelta(hours=1)
    # And a job that asks for 8 days is refused, with nothing stored
    too_long = NewJobRequest("https://example.com/a.mp4", 1, 2, retention_seconds=8 * 24 * 3600)
    with pytest.raises(errors.ValidationFailedError, match="at most 604800"):
        create_job(services, too_long, owner="key-1", correlation_id="cid")
    assert len(services.workflow.started) == 1


def test_the_stored_source_url_has_a_lower_case_scheme(services):
    job = create_job(services, NewJobRequest(" HTTPS://Example.com/A.mp4", 1, 2), owner="key-1", correlation_id="cid")
    assert job.request.source_url == "https://Example.com/A.mp4"


def test_a_transcription_timeout_before_any_worker_is_the_transcribe_stages_failure(services):
    # Given a job whose clip is cut, and whose transcription request no worker ever picked up
    job = submit(services)
    probe_source(services, job.id)
    clip_source(services, job.id)
    # When the Transcribe state's heartbeat timeout reaches FailJob (through TranscriptionTimedOut)
    recorded = fail_job(services, job.id, "TranscriptionTimeoutError", None)
    # Then the failure is the Transcribe stage's, and counted as a transcription that timed out
    assert recorded.newly_failed and recorded.failed_stage is Stage.TRANSCRIBE
    last = recorded.job.events[-1]
    assert (last.stage, last.state, last.code) == (Stage.TRANSCRIBE, "Transcribe", "TIMEOUT")
    assert services.telemetry.total("AsrTranscriptions", status="timeout") == 1


def test_a_failure_between_stages_blames_no_stage(services):
    # Given a job whose clip stage finished
    job = submit(services)
    probe_source(services, job.id)
    clip_source(services, job.id)
    # When the next state fails before its step could start
    recorded = fail_job(services, job.id, "InternalError", None)
    # Then no stage is blamed, none is timed, and no transcription is counted
    assert recorded.failed_stage is None
    assert recorded.job.events[-1].duration_seconds is None
    assert services.telemetry.total("AsrTranscriptions") == 0


def test_failing_a_finished_job_again_changes_and_counts_nothing(services):
    job = submit(services)
    first = fail_job(services, job.id, "SourceNotFoundError", None)
    again = fail_job(services, job.id, "SourceNotFoundError", None)
    assert first.newly_failed and not again.newly_failed and again.job == first.job
    assert services.telemetry.total("JobsFailed") == 1


RESTARTED = "the service stopped while the job ran; create the job again"


def test_interrupting_fails_every_running_job_where_it_stood_and_keeps_nothing(services):
    # Given jobs caught in probe and in finalize with a clip stored, beside one that succeeded
    probing = submit(services, end=62)
    enter_stage(services, probing.id, Stage.PROBE)
    finalizing = submit(services, end=63)
    probe_source(services, finalizing.id)
    clip_source(services, finalizing.id)
    enter_stage(services, finalizing.id, Stage.FINALIZE)
    succeeded = run_pipeline(services, submit(services, end=64).id)
    # When the host that ran their executions restarts
    recovery = interrupt_unfinished_jobs(services, RESTARTED)
    # Then each running job failed once, with INTERRUPTED and the stage it was in
    assert {(r.job.id, r.failed_stage) for r in recovery.failed} == {
        (probing.id, Stage.PROBE),
        (finalizing.id, Stage.FINALIZE),
    }
    assert recovery.started == [] and recovery.unhandled == []
    for job_id in (probing.id, finalizing.id):
        job = services.jobs.get(job_id)
        assert job.status is JobStatus.FAILED
        assert (job.error.code, job.error.message) == ("INTERRUPTED", RESTARTED)
        assert job.events[-1].type == "jobFailed" and job.artifacts == {}
    assert services.jobs.get(finalizing.id).events[-1].stage is Stage.FINALIZE
    # And their partial artifacts are gone, the succeeded job's kept, the failures counted
    assert set(services.artifacts.objects) == set(succeeded.artifacts.values())
    assert services.jobs.get(succeeded.id) == succeeded
    assert services.telemetry.total("JobsFailed", errorCode="INTERRUPTED") == 2


def test_interrupting_starts_a_queued_job_as_a_replay_of_its_request_would(services):
    # Given a job stored, and maybe started, but that never reached its first stage
    queued = submit(services, end=61)
    # When the host restarts
    recovery = interrupt_unfinished_jobs(services, RESTARTED)
    # Then the job is started again under its own name, not failed: it did no work yet
    assert recovery.started == [queued.id] and recovery.failed == []
    assert services.workflow.started == [(queued.id, "cid-1")] * 2
    assert services.jobs.get(queued.id) == queued
    assert services.telemetry.total("JobsFailed") == 0


def test_interrupting_fails_a_queued_job_that_cannot_start(services):
    # Given a queued job, and an orchestrator that now refuses to start it
    queued = submit(services, end=61)
    services.workflow.fail_with = errors.ServiceUnavailableError("the engine is down")
    # When the host restarts
    recovery = interrupt_unfinished_jobs(services, RESTARTED)
    # Then the job failed the usual way, at no stage
    assert [(r.job.id, r.failed_stage) for r in recovery.failed] == [(queued.id, None)]
    job = services.jobs.get(queued.id)
    assert (job.status, job.error.code, job.events[-1].stage) == (JobStatus.FAILED, "INTERRUPTED", Stage.QUEUED)


def test_interrupting_fails_a_queued_job_whose_own_subtitles_were_never_stored(services):
    # Given a queued job with the user's subtitles, whose first attempt died before storing them
    request = NewJobRequest(
        "https://example.com/a.mp4", 60, 61, burn_subtitles=True, subtitles_srt="1\n00:00:00,000 --> 00:00:01,000\nhi\n"
    )
    queued = create_job(services, request, owner="key-1", correlation_id="cid-1")
    services.artifacts.objects.clear()
    # When the host restarts
    recovery = interrupt_unfinished_jobs(services, RESTARTED)
    # Then it is failed rather than started without them
    assert [r.job.id for r in recovery.failed] == [queued.id] and recovery.started == []


def test_interrupting_removes_the_scratch_folders_a_killed_step_left(services, tmp_path):
    # Given a job killed in its clip step, its scratch folders left in the work dir beside others'
    running = submit(services, end=61)
    enter_stage(services, running.id, Stage.CLIP)
    other = submit(services, end=62)
    for name in (f"clip-{running.id}-a1", f"burn-{running.id}-b2", f"clip-{other.id}-c3", "unrelated"):
        (tmp_path / name / "smart-cut-x").mkdir(parents=True)
        (tmp_path / name / "smart-cut-x" / "part.mp4").write_bytes(b"part")
    # When the host restarts
    interrupt_unfinished_jobs(services, RESTARTED)
    # Then the interrupted job's folders are gone, and nothing else is
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([f"clip-{other.id}-c3", "unrelated"])


class _FailingUpdates:
    """The fake job store, except that updating some jobs raises."""

    def __init__(self, jobs, failures):
        self._jobs, self._failures = jobs, failures

    def update(self, job_id, change):
        if job_id in self._failures:
            raise self._failures[job_id]
        return self._jobs.update(job_id, change)

    def __getattr__(self, name):
        return getattr(self._jobs, name)


def test_interrupting_goes_on_past_jobs_it_cannot_fail(services):
    # Given three running jobs, two of which cannot be failed: storage trouble, and a plain bug
    jobs = [submit(services, end=61 + i) for i in range(3)]
    for job in jobs:
        enter_stage(services, job.id, Stage.PROBE)
    unavailable, broken = errors.StorageUnavailableError("disk gone"), RuntimeError("bug")
    services = dataclasses.replace(
        services, jobs=_FailingUpdates(services.jobs, {jobs[0].id: unavailable, jobs[1].id: broken})
    )
    # When the host restarts
    recovery = interrupt_unfinished_jobs(services, RESTARTED)
    # Then the third job failed all the same, and the other two are reported with what stopped them
    assert [r.job.id for r in recovery.failed] == [jobs[2].id]
    assert recovery.unhandled == [(jobs[0].id, unavailable), (jobs[1].id, broken)]
    assert services.jobs.get(jobs[2].id).status is JobStatus.FAILED


def test_interrupting_again_changes_and_counts_nothing(services, clock):
    # Given a restart that already interrupted a running job
    job = submit(services)
    enter_stage(services, job.id, Stage.PROBE)
    interrupt_unfinished_jobs(services, RESTARTED)
    failed = services.jobs.get(job.id)
    # When the recovery runs a second time, later
    clock.advance(seconds=30)
    recovery = interrupt_unfinished_jobs(services, RESTARTED)
    # Then it finds nothing to do: the job, its events and the metrics are as they were
    assert recovery.failed == [] and recovery.started == []
    assert services.jobs.get(job.id) == failed
    assert services.telemetry.total("JobsFailed") == 1


def test_interrupting_reaches_jobs_beyond_one_batch(services, monkeypatch):
    # Given more unfinished jobs than one listing returns, running and queued
    monkeypatch.setattr(use_cases.recovery, "INTERRUPT_BATCH", 2)
    running = [submit(services, end=61 + i) for i in range(5)]
    for job in running:
        enter_stage(services, job.id, Stage.PROBE)
    queued = [submit(services, end=71 + i) for i in range(5)]
    services.workflow.started.clear()
    # When the recovery runs
    recovery = interrupt_unfinished_jobs(services, RESTARTED)
    # Then every running one failed and every queued one started, each once, though started ones stay listed
    assert sorted(r.job.id for r in recovery.failed) == sorted(job.id for job in running)
    assert sorted(recovery.started) == sorted(job.id for job in queued)
    assert sorted(job_id for job_id, _ in services.workflow.started) == sorted(job.id for job in queued)
