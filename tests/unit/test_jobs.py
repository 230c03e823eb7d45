from datetime import UTC, datetime, timedelta

import pytest

from clipline.domain.errors import JobFinishedError
from clipline.domain.jobs import (
    RECENT_EVENTS,
    ClipRequest,
    JobChange,
    JobEvent,
    JobStatus,
    Stage,
    apply_change,
    new_job,
    overall_progress,
    stages_of,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def a_job():
    request = ClipRequest(source_url="https://example.com/a.mp4", start_seconds=60, end_seconds=70)
    return new_job(request, owner="key-1", correlation_id="c-1", now=NOW, retention=timedelta(days=7))


def test_new_job_is_queued_and_expires_after_retention():
    job = a_job()
    assert (job.status, job.stage, job.progress) == (JobStatus.QUEUED, Stage.QUEUED, 0)
    assert job.expires_at == NOW + timedelta(days=7)
    assert job.request.duration_seconds == 10


def test_change_applies_fields_and_appends_event():
    job = a_job()
    later = NOW + timedelta(seconds=5)
    event = JobEvent(at=later, type="stageEntered", stage=Stage.PROBE)
    changed = apply_change(job, JobChange(status=JobStatus.RUNNING, stage=Stage.PROBE, progress=2, event=event), later)
    assert (changed.status, changed.stage, changed.progress) == (JobStatus.RUNNING, Stage.PROBE, 2)
    assert changed.events == (event,)
    assert changed.updated_at == later
    assert job.status is JobStatus.QUEUED  # the original is untouched


@pytest.mark.parametrize("terminal", [JobStatus.SUCCEEDED, JobStatus.FAILED])
def test_a_finished_job_never_changes(terminal):
    job = apply_change(a_job(), JobChange(status=JobStatus.RUNNING), NOW)
    job = apply_change(job, JobChange(status=terminal), NOW)
    with pytest.raises(JobFinishedError):
        apply_change(job, JobChange(progress=50), NOW)


def test_a_queued_job_cannot_jump_to_succeeded():
    with pytest.raises(JobFinishedError, match="cannot go from queued to succeeded"):
        apply_change(a_job(), JobChange(status=JobStatus.SUCCEEDED), NOW)


@pytest.mark.parametrize("transcribe", [False, True])
def test_progress_is_monotonic_across_the_stages_a_job_runs(transcribe):
    request = a_job().request.model_copy(update={"transcribe": transcribe})
    points = [overall_progress(stage, f, request) for stage in stages_of(request) for f in (0.0, 0.5, 1.0)]
    assert points == sorted(points)
    assert points[0] == 0 and points[-1] == 100
    # The clip stage fills the gap up to the next stage the job really runs.
    assert overall_progress(Stage.CLIP, 1.0, request) == (40 if transcribe else 95)


def test_recent_events_keeps_the_newest():
    job = a_job()
    for i in range(RECENT_EVENTS + 5):
        job = apply_change(job, JobChange(event=JobEvent(at=NOW + timedelta(seconds=i), type="t", stage=Stage.QUEUED)), NOW)
    assert len(job.recent_events) == RECENT_EVENTS
    assert job.recent_events[-1].at == NOW + timedelta(seconds=RECENT_EVENTS + 4)
