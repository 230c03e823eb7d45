"""Which files go with a removed record, against fakes."""

import json
from datetime import timedelta

import pytest
from pydantic import ValidationError

from clipline.domain import errors
from clipline.domain.asr_jobs import AsrStatus
from clipline.domain.jobs import ClipRequest, new_job
from clipline.domain.retention import remove_artifacts_of_expired_record
from clipline.domain.transcription import transcript_cache_prefix
from tests.fakes import FixedClock, InMemoryAsrJobRepository, an_asr_record, fake_services


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture
def services(clock):
    return fake_services(clock, asr_jobs=InMemoryAsrJobRepository())


def stored_job(services, clock):
    request = ClipRequest(source_url="https://example.com/a.mp4", start_seconds=0, end_seconds=4)
    job = services.jobs.create(new_job(request, "key-1", "cid-1", clock.now(), timedelta(days=7)))
    services.artifacts.put_bytes(f"jobs/{job.id}/clip.mp4", b"x", "video/mp4")
    return job


def done_record(services, clock, asr_job_id="a1", media_hash="h" * 64):
    folder = transcript_cache_prefix(media_hash, "fake-1", asr_job_id)
    services.artifacts.put_bytes(f"{folder}transcript.json", b"{}", "application/json")
    return an_asr_record(
        clock.now(),
        id=asr_job_id,
        job_id="j1",
        media_hash=media_hash,
        status=AsrStatus.DONE,
        transcript_key=f"{folder}transcript.json",
    )


def as_document(model) -> dict:
    return json.loads(model.model_dump_json())


def test_a_removed_job_without_its_document_is_named_by_its_key(services, clock):
    # Given a job whose record is gone
    job = stored_job(services, clock)
    services.jobs.delete(job.id)

    # When its removal comes with the key only
    deleted = remove_artifacts_of_expired_record(services, "job", None, f"JOB#{job.id}")

    # Then its folder is deleted
    assert deleted == 1
    assert services.artifacts.objects == {}


def test_a_removed_job_that_still_reads_back_live_keeps_its_files(services, clock):
    job = stored_job(services, clock)

    assert remove_artifacts_of_expired_record(services, "job", as_document(job), f"JOB#{job.id}") == 0
    assert f"jobs/{job.id}/clip.mp4" in services.artifacts.objects


def test_a_job_id_that_is_not_an_id_deletes_nothing(services, clock):
    # Given a document naming a job id that would widen the deleted prefix
    job = stored_job(services, clock)
    services.jobs.delete(job.id)

    # When its removal is handled, then it is refused and every file stays
    with pytest.raises(ValidationError):
        remove_artifacts_of_expired_record(services, "job", {**as_document(job), "id": ""}, None)
    with pytest.raises(errors.InternalError):
        remove_artifacts_of_expired_record(services, "job", None, "IDEMPOTENCY#key-1#k")
    assert f"jobs/{job.id}/clip.mp4" in services.artifacts.objects


def test_a_done_record_with_no_live_entry_loses_its_transcript_and_twice_is_harmless(services, clock):
    record = done_record(services, clock)
    clock.advance(days=8)

    first = remove_artifacts_of_expired_record(services, "asrJob", as_document(record), "ASR#a1")
    second = remove_artifacts_of_expired_record(services, "transcriptCache", as_document(record), "TRANSCRIPT#x")

    assert (first, second) == (1, 0)
    assert services.artifacts.objects == {}


def test_records_that_own_no_files_delete_nothing(services, clock):
    record = done_record(services, clock)
    clock.advance(days=8)
    before = dict(services.artifacts.objects)

    for record_type, document in [
        ("asrJob", as_document(record.model_copy(update={"status": AsrStatus.REUSED}))),
        ("asrJob", as_document(record.model_copy(update={"status": AsrStatus.SUPERSEDED}))),
        ("asrJob", None),
        ("idempotencyClaim", None),
        ("somethingNewer", {"id": "x"}),
    ]:
        assert remove_artifacts_of_expired_record(services, record_type, document, "pk") == 0
    assert services.artifacts.objects == before
