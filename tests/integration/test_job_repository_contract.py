"""One contract for every JobRepository: SQLite (local), DynamoDB (moto) and the in-memory fake."""

from datetime import timedelta
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from clipline.adapters.aws import dynamo_job_repository
from clipline.adapters.aws.dynamo_job_repository import DynamoJobRepository
from clipline.adapters.local.sqlite_job_repository import SqliteJobRepository
from clipline.domain.errors import IdempotencyKeyReusedError, JobFinishedError, JobNotFoundError
from clipline.domain.jobs import (
    ClipRequest,
    JobChange,
    JobEvent,
    JobStatus,
    SourceInfo,
    Stage,
    new_job,
)
from clipline.domain.ports import IdempotencyClaim
from tests.fakes import FixedClock, InMemoryJobRepository, create_moto_jobs_table


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture(params=["sqlite", "dynamodb", "memory"])
def repository(request, clock, tmp_path):
    if request.param == "sqlite":
        yield SqliteJobRepository(tmp_path / "jobs.sqlite3", clock.now)
    elif request.param == "memory":
        yield InMemoryJobRepository(clock.now)
    else:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            create_moto_jobs_table(client)
            yield DynamoJobRepository(client, "jobs", clock.now)


def a_job(clock, end=70.0, owner="key-1"):
    request = ClipRequest(source_url="https://example.com/a.mp4", start_seconds=60, end_seconds=end)
    return new_job(request, owner=owner, correlation_id="cid", now=clock.now(), retention=timedelta(days=7))


def claim(clock, key="idem-1", request_hash="h1", owner="key-1"):
    return IdempotencyClaim(owner=owner, key=key, request_hash=request_hash, expires_at=clock.now() + timedelta(hours=24))


def test_list_expired_finds_only_jobs_past_their_expiry(repository, clock):
    # Given a job kept 7 days and one kept an hour
    week, hour = a_job(clock), a_job(clock).model_copy(update={"expires_at": clock.now() + timedelta(hours=1)})
    repository.create(week)
    repository.create(hour)
    # Then only the hour-long one is listed, once its hour has passed
    assert repository.list_expired(clock.now(), 10) == []
    clock.advance(hours=2)
    assert [job.id for job in repository.list_expired(clock.now(), 10)] == [hour.id]


def test_missing_names_the_ids_without_a_job_among_many(repository, clock):
    # Given three jobs, one of them deleted
    kept, other, deleted = (repository.create(a_job(clock, end=61 + i)) for i in range(3))
    repository.delete(deleted.id)
    # When more ids are asked for than one request or statement takes
    unknown = {f"{number:032x}" for number in range(1200)}
    # Then exactly those without a job are named
    assert repository.missing([kept.id, other.id, deleted.id, *unknown, kept.id]) == unknown | {deleted.id}
    assert repository.missing([kept.id]) == set()
    assert repository.missing([]) == set()


def test_list_unfinished_finds_queued_and_running_jobs_only(repository, clock):
    # Given a queued, a running, a succeeded and a failed job
    queued, running, succeeded, failed = (repository.create(a_job(clock, end=61 + i)) for i in range(4))
    repository.update(running.id, JobChange(status=JobStatus.RUNNING, stage=Stage.PROBE))
    repository.update(succeeded.id, JobChange(status=JobStatus.RUNNING))
    repository.update(succeeded.id, JobChange(status=JobStatus.SUCCEEDED, stage=Stage.DONE))
    repository.update(failed.id, JobChange(status=JobStatus.FAILED))
    # Then only the two unfinished ones are listed, as they are stored, and the limit holds
    assert sorted(job.id for job in repository.list_unfinished(10)) == sorted([queued.id, running.id])
    assert repository.get(running.id) in repository.list_unfinished(10)
    assert len(repository.list_unfinished(1)) == 1


def test_created_job_reads_back_equal(repository, clock):
    job = a_job(clock)
    assert repository.create(job) == job
    assert repository.get(job.id) == job


def test_missing_job_is_not_found(repository):
    with pytest.raises(JobNotFoundError):
        repository.get("missing")
    with pytest.raises(JobNotFoundError):
        repository.update("missing", JobChange(progress=1))


def test_update_applies_change_and_keeps_event_order(repository, clock):
    job = repository.create(a_job(clock))
    repository.update(job.id, JobChange(status=JobStatus.RUNNING, stage=Stage.PROBE, event=JobEvent(at=clock.now(), type="stageEntered", stage=Stage.PROBE)))
    clock.advance(seconds=3)
    source = SourceInfo(duration_seconds=180, has_video=True, has_audio=False, frame_rate=25)
    repository.update(job.id, JobChange(source=source, progress=9, last_heartbeat_at=clock.now(), event=JobEvent(at=clock.now(), type="stageExited", stage=Stage.PROBE)))
    stored = repository.get(job.id)
    assert stored.source == source and stored.progress == 9 and stored.last_heartbeat_at == clock.now()
    assert [event.type for event in stored.events] == ["stageEntered", "stageExited"]
    assert stored.updated_at == clock.now()


def test_finished_job_refuses_changes(repository, clock):
    job = repository.create(a_job(clock))
    repository.update(job.id, JobChange(status=JobStatus.FAILED))
    with pytest.raises(JobFinishedError):
        repository.update(job.id, JobChange(progress=50))
    assert repository.get(job.id).status is JobStatus.FAILED


def test_same_claim_returns_the_first_job(repository, clock):
    first = repository.create(a_job(clock), claim(clock))
    assert repository.create(a_job(clock), claim(clock)).id == first.id


def test_claim_with_another_request_is_refused(repository, clock):
    first = repository.create(a_job(clock), claim(clock))
    with pytest.raises(IdempotencyKeyReusedError):
        repository.create(a_job(clock, end=80), claim(clock, request_hash="h2"))
    assert repository.get(first.id) == first


def test_claims_are_scoped_to_their_owner(repository, clock):
    a = repository.create(a_job(clock, owner="a"), claim(clock, owner="a"))
    b = repository.create(a_job(clock, owner="b"), claim(clock, owner="b", request_hash="other"))
    assert a.id != b.id


def test_expired_claim_no_longer_counts(repository, clock):
    first = repository.create(a_job(clock), claim(clock))
    clock.advance(hours=25)
    second = repository.create(a_job(clock, end=80), claim(clock, request_hash="h2"))
    assert second.id != first.id


def test_delete_removes_the_job_and_its_claim(repository, clock):
    job = repository.create(a_job(clock), claim(clock))
    repository.delete(job.id)
    repository.delete(job.id)  # idempotent
    with pytest.raises(JobNotFoundError):
        repository.get(job.id)
    again = repository.create(a_job(clock, end=80), claim(clock, request_hash="h2"))
    assert again.id != job.id


def test_dynamodb_missing_asks_again_for_the_keys_it_left_unprocessed(monkeypatch):
    # Given a table that answers for one key and leaves the other unprocessed, as a busy table does
    # A session of its own: the default one would keep these credentials for later tests.
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    client = session.client("dynamodb")
    repository = DynamoJobRepository(client, "jobs", FixedClock().now)
    # The module's own name for time, not time.sleep itself, which every thread in this process shares.
    monkeypatch.setattr(dynamo_job_repository, "time", SimpleNamespace(sleep=lambda seconds: None))
    key = {"pk": {"S": "JOB#b"}}
    with Stubber(client) as stubber:
        stubber.add_response(
            "batch_get_item",
            {"Responses": {"jobs": [{"pk": {"S": "JOB#a"}}]},
             "UnprocessedKeys": {"jobs": {"Keys": [key], "ProjectionExpression": "pk", "ConsistentRead": True}}},
        )  # fmt: skip
        stubber.add_response(
            "batch_get_item",
            {"Responses": {"jobs": []}},
            {"RequestItems": {"jobs": {"Keys": [key], "ProjectionExpression": "pk", "ConsistentRead": True}}},
        )
        # When the missing ones among both are asked for
        missing = repository.missing(["a", "b"])
        # Then the second call asked for the unprocessed key alone, and its answer counts
        stubber.assert_no_pending_responses()
    assert missing == {"b"}
