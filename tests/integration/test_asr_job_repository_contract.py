"""One contract for every AsrJobRepository: SQLite (local), DynamoDB (moto) and the in-memory fake."""

import threading
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws

from clipline.adapters.aws.dynamo_asr_job_repository import DynamoAsrJobRepository
from clipline.adapters.local.sqlite_asr_job_repository import SqliteAsrJobRepository
from clipline.domain.asr_jobs import AsrStatus
from clipline.domain.errors import AsrJobNotFoundError
from clipline.domain.jobs import JobError
from tests.fakes import FixedClock, InMemoryAsrJobRepository, an_asr_record, create_moto_jobs_table


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture(params=["sqlite", "dynamodb", "memory"])
def repository(request, tmp_path):
    if request.param == "sqlite":
        yield SqliteAsrJobRepository(tmp_path / "clipline.sqlite3")
    elif request.param == "memory":
        yield InMemoryAsrJobRepository()
    else:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            create_moto_jobs_table(client)
            yield DynamoAsrJobRepository(client, "jobs")


def a_record(clock, media_hash="a" * 64, model_version="fake-1", job_id="job-1"):
    return an_asr_record(clock.now(), job_id=job_id, media_hash=media_hash, model_version=model_version)


def test_created_record_reads_back_equal(repository, clock):
    record = a_record(clock)
    repository.create(record)
    assert repository.get(record.id) == record


def test_missing_record_is_not_found(repository):
    with pytest.raises(AsrJobNotFoundError):
        repository.get("nope")


def test_heartbeat_is_recorded_while_running(repository, clock):
    record = a_record(clock)
    repository.create(record)
    clock.advance(seconds=5)
    repository.heartbeat(record.id, clock.now())
    assert repository.get(record.id).last_heartbeat_at == clock.now()


def test_a_running_record_is_not_a_cache_entry(repository, clock):
    record = a_record(clock)
    repository.create(record)
    assert repository.find_cached(record.media_hash, record.model_version) is None


def test_finishing_makes_the_cache_entry(repository, clock):
    # Given a running record
    record = a_record(clock)
    repository.create(record)
    # When it finishes
    entry = repository.finish(record.id, "transcripts/a/fake-1/transcript.json", clock.now())
    # Then it is the cache entry for its audio and model version, and only for those
    assert entry.id == record.id and entry.status is AsrStatus.DONE
    assert repository.find_cached(record.media_hash, "fake-1").transcript_key == "transcripts/a/fake-1/transcript.json"
    assert repository.find_cached(record.media_hash, "fake-2") is None
    assert repository.find_cached("b" * 64, "fake-1") is None


def test_a_late_heartbeat_does_not_undo_a_finish(repository, clock):
    record = a_record(clock)
    repository.create(record)
    repository.finish(record.id, "k", clock.now())
    repository.heartbeat(record.id, clock.now())
    assert repository.get(record.id).status is AsrStatus.DONE


def test_the_second_finisher_is_superseded_by_the_first(repository, clock):
    # Given two records on the same audio and model
    first, second = a_record(clock, job_id="job-1"), a_record(clock, job_id="job-2")
    repository.create(first)
    repository.create(second)
    # When both finish
    repository.finish(first.id, "transcripts/first.json", clock.now())
    entry = repository.finish(second.id, "transcripts/second.json", clock.now())
    # Then the first stays the one cache entry and the second points at it
    assert entry.id == first.id
    superseded = repository.get(second.id)
    assert superseded.status is AsrStatus.SUPERSEDED
    assert (superseded.cache_entry_id, superseded.transcript_key) == (first.id, "transcripts/first.json")
    assert repository.find_cached(first.media_hash, first.model_version).id == first.id


def test_concurrent_finishers_leave_one_cache_entry(repository, clock):
    if isinstance(repository, DynamoAsrJobRepository):
        # moto's in-process DynamoDB is not thread-safe; the conditional write that
        # decides the race is exercised deterministically by the test above.
        pytest.skip("moto's in-process DynamoDB cannot take concurrent writers")
    # Given eight records on the same audio finishing at the same moment
    records = [a_record(clock, job_id=f"job-{n}") for n in range(8)]
    for record in records:
        repository.create(record)
    barrier = threading.Barrier(len(records))
    entries = []

    def finish(record):
        barrier.wait()
        entries.append(repository.finish(record.id, f"transcripts/{record.id}.json", clock.now()))

    threads = [threading.Thread(target=finish, args=(record,)) for record in records]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every finisher got the same entry, and exactly one record is done
    assert len({entry.id for entry in entries}) == 1
    statuses = [repository.get(record.id).status for record in records]
    assert statuses.count(AsrStatus.DONE) == 1
    assert statuses.count(AsrStatus.SUPERSEDED) == 7


def test_extending_keeps_an_entry_longer_and_never_shortens_it(repository, clock):
    # Given a finished cache entry
    record = a_record(clock)
    repository.create(record)
    repository.finish(record.id, "k", clock.now())
    # When a later job reuses it, and then one that expires sooner
    repository.extend(record.id, record.expires_at + timedelta(days=3))
    repository.extend(record.id, record.expires_at - timedelta(days=1))
    # Then it lives as long as the longest-lived user, and the cache lookup sees that
    assert repository.get(record.id).expires_at == record.expires_at + timedelta(days=3)
    assert repository.find_cached(record.media_hash, record.model_version).expires_at == record.expires_at + timedelta(days=3)


def test_expired_records_are_listed_and_deleted_with_their_cache_entry(repository, clock):
    # Given a finished cache entry and a running record that expire in a week
    done, running = a_record(clock), a_record(clock, media_hash="b" * 64)
    repository.create(done)
    repository.create(running)
    repository.finish(done.id, "k", clock.now())
    assert repository.list_expired(clock.now(), 10) == []
    # When the week has passed
    clock.advance(days=8)
    assert {record.id for record in repository.list_expired(clock.now(), 10)} == {done.id, running.id}
    # Then deleting them removes the cache entry too, and deleting again is fine
    repository.delete(done.id)
    repository.delete(done.id)
    assert repository.find_cached(done.media_hash, done.model_version) is None
    with pytest.raises(AsrJobNotFoundError):
        repository.get(done.id)


def test_failing_records_the_error(repository, clock):
    record = a_record(clock)
    repository.create(record)
    repository.fail(record.id, JobError(code="UPSTREAM_FAILURE", message="provider said no"), clock.now())
    failed = repository.get(record.id)
    assert failed.status is AsrStatus.FAILED and failed.error.code == "UPSTREAM_FAILURE"
    assert repository.find_cached(record.media_hash, record.model_version) is None


def test_dynamodb_extensions_that_interleave_keep_the_later_expiry(clock):
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_moto_jobs_table(client)
        repository = DynamoAsrJobRepository(client, "jobs")
        record = a_record(clock)
        repository.create(record)
        finished = repository.finish(record.id, "k", clock.now())
        longer, shorter = record.expires_at + timedelta(days=3), record.expires_at + timedelta(days=1)
        # Given one job's extension read the record before another's extension landed
        stale_read = repository.get
        repository.get = lambda _: finished
        repository.extend(record.id, longer)
        # When the one that read first writes its shorter expiry
        repository.extend(record.id, shorter)
        repository.get = stale_read
        # Then the longer expiry stands, on the record and on the cache entry DynamoDB's TTL reads
        assert repository.get(record.id).expires_at == longer
        assert repository.find_cached(record.media_hash, record.model_version).expires_at == longer
