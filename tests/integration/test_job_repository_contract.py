"""One contract for every JobRepository: SQLite (local), DynamoDB (moto) and the in-memory fake."""

import random
import sqlite3
from contextlib import closing, contextmanager
from datetime import datetime, timedelta
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from clipline.adapters.aws import dynamo_job_repository
from clipline.adapters.aws.dynamo_job_repository import DynamoJobRepository
from clipline.adapters.local.sqlite_job_repository import SqliteJobRepository
from clipline.domain.errors import IdempotencyKeyReusedError, JobFinishedError, JobNotFoundError, JobNotReadyError
from clipline.domain.jobs import (
    ClipRequest,
    JobChange,
    JobEvent,
    JobStatus,
    SourceInfo,
    Stage,
    new_job,
)
from clipline.domain.job_listing import JobPage, listing_key
from clipline.domain.ports import IdempotencyClaim
from clipline.domain.webhooks import DEFAULT_WEBHOOK_SCHEDULE, WebhookAttempt, WebhookEvent, WebhookState
from tests.fakes import FixedClock, InMemoryJobRepository, create_moto_jobs_table


@pytest.fixture
def clock():
    return FixedClock()


@contextmanager
def opened_repository(kind, clock, tmp_path):
    if kind == "sqlite":
        yield SqliteJobRepository(tmp_path / "jobs.sqlite3", clock.now)
    elif kind == "memory":
        yield InMemoryJobRepository(clock.now)
    else:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            create_moto_jobs_table(client)
            yield DynamoJobRepository(client, "jobs", clock.now)


@pytest.fixture(params=["sqlite", "dynamodb", "memory"])
def repository(request, clock, tmp_path):
    with opened_repository(request.param, clock, tmp_path) as opened:
        yield opened


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


# --- record_webhook ------------------------------------------------------------------------------

HOOK_URL = "https://hooks.example/clipline"


def a_hooked_job(clock, owner="key-1"):
    request = ClipRequest(source_url="https://example.com/a.mp4", start_seconds=60, end_seconds=70)
    return new_job(
        request, owner=owner, correlation_id="cid", now=clock.now(), retention=timedelta(days=7), webhook_url=HOOK_URL
    )


def end(repository, clock, job, status=JobStatus.SUCCEEDED):
    """Run ``job`` and end it with ``status``, its webhook announced in the same change, as the pipeline does."""
    repository.update(job.id, JobChange(status=JobStatus.RUNNING, stage=Stage.PROBE))
    clock.advance(seconds=30)
    event = WebhookEvent.SUCCEEDED if status is JobStatus.SUCCEEDED else WebhookEvent.FAILED
    stage = Stage.DONE if status is JobStatus.SUCCEEDED else Stage.PROBE
    change = JobChange(status=status, stage=stage, webhook=job.webhook.announce(event, clock.now()))
    return repository.update(job.id, change)


def attempted(webhook, clock, status, error=None):
    attempt = WebhookAttempt(at=clock.now(), status=status, error=error)
    return webhook.after(attempt, DEFAULT_WEBHOOK_SCHEDULE, random.Random(7))


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED])
def test_record_webhook_on_an_ended_job_replaces_its_webhook_and_nothing_else(repository, clock, status):
    # Given an ended job whose webhook is due
    ended = end(repository, clock, repository.create(a_hooked_job(clock)), status)
    assert ended.webhook.is_due and ended.updated_at == clock.now()
    # When a failed attempt is recorded, minutes later
    clock.advance(minutes=5)
    retrying = attempted(ended.webhook, clock, 500, "the receiver answered 500")
    assert retrying.state is WebhookState.PENDING and retrying != ended.webhook
    returned = repository.record_webhook(ended.id, retrying)
    # Then the job, returned and stored, is the ended job with that webhook: updated_at stays as the end left it
    assert returned == ended.model_copy(update={"webhook": retrying})
    assert repository.get(ended.id) == returned
    assert returned.updated_at == ended.updated_at != clock.now()
    # And the next record replaces that one (the attempts are the record's, not appended by the store)
    clock.advance(minutes=5)
    delivered = attempted(retrying, clock, 204)
    repository.record_webhook(ended.id, delivered)
    stored = repository.get(ended.id)
    assert stored.webhook == delivered
    assert [attempt.status for attempt in stored.webhook.attempts] == [500, 204]
    assert stored == ended.model_copy(update={"webhook": delivered})
    # And the job is still finished: an ordinary change is refused as before
    with pytest.raises(JobFinishedError):
        repository.update(ended.id, JobChange(progress=50))


def test_record_webhook_on_a_job_that_has_not_ended_is_refused(repository, clock):
    job = repository.create(a_hooked_job(clock))
    announced = job.webhook.announce(WebhookEvent.SUCCEEDED, clock.now())
    # Queued, then running: the webhook waits for the job's end, and the job stays as it was
    with pytest.raises(JobNotReadyError):
        repository.record_webhook(job.id, announced)
    assert repository.get(job.id) == job
    running = repository.update(job.id, JobChange(status=JobStatus.RUNNING, stage=Stage.PROBE))
    with pytest.raises(JobNotReadyError):
        repository.record_webhook(job.id, announced)
    assert repository.get(job.id) == running


def test_record_webhook_on_a_missing_job_is_not_found(repository, clock):
    with pytest.raises(JobNotFoundError):
        repository.record_webhook("missing", a_hooked_job(clock).webhook)


def test_record_webhook_keeps_the_job_s_idempotency_claim_with_it(repository, clock):
    # Given an ended job created with a claim, its webhook recorded
    ended = end(repository, clock, repository.create(a_hooked_job(clock), claim(clock)))
    repository.record_webhook(ended.id, attempted(ended.webhook, clock, 204))
    # When the job is deleted, its claim goes with it: the key is free for another request
    repository.delete(ended.id)
    again = repository.create(a_job(clock, end=80), claim(clock, request_hash="h2"))
    assert again.id != ended.id


def outbox(path):
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT job_id, message_id, due_at FROM webhook_outbox ORDER BY job_id").fetchall()
    return [(job_id, message_id, datetime.fromisoformat(due_at)) for job_id, message_id, due_at in rows]


def test_sqlite_keeps_an_outbox_row_exactly_while_a_webhook_is_due(clock, tmp_path):
    path = tmp_path / "jobs.sqlite3"
    repository = SqliteJobRepository(path, clock.now)
    # Given a job with a webhook, and one without: nothing is due while they are unfinished
    job = repository.create(a_hooked_job(clock))
    plain = repository.create(a_job(clock))
    repository.update(plain.id, JobChange(status=JobStatus.RUNNING))
    assert outbox(path) == []
    # When both end, only the hooked one's message is due, now, in the same write as its end
    repository.update(plain.id, JobChange(status=JobStatus.SUCCEEDED, stage=Stage.DONE))
    ended = end(repository, clock, job)
    assert outbox(path) == [(job.id, ended.webhook.message_id, clock.now())]
    # A failed attempt moves the row to the next attempt's time
    clock.advance(seconds=1)
    retrying = attempted(ended.webhook, clock, 503)
    repository.record_webhook(job.id, retrying)
    assert retrying.next_attempt_at > clock.now()
    assert outbox(path) == [(job.id, ended.webhook.message_id, retrying.next_attempt_at)]
    # Delivery removes it
    clock.advance(seconds=10)
    delivered = attempted(retrying, clock, 200)
    repository.record_webhook(job.id, delivered)
    assert outbox(path) == []
    # A redelivery puts it back, due now; deleting the job removes it
    repository.record_webhook(job.id, delivered.redeliver(clock.now()))
    assert outbox(path) == [(job.id, ended.webhook.message_id, clock.now())]
    repository.delete(job.id)
    assert outbox(path) == []


def test_sqlite_removes_the_outbox_row_when_a_webhook_is_given_up_on(clock, tmp_path):
    path = tmp_path / "jobs.sqlite3"
    repository = SqliteJobRepository(path, clock.now)
    ended = end(repository, clock, repository.create(a_hooked_job(clock)), JobStatus.FAILED)
    assert [row[0] for row in outbox(path)] == [ended.id]
    # A 410 stops the retries: the webhook is failed, no longer due, and its row is gone
    stopped = attempted(ended.webhook, clock, 410)
    assert stopped.state is WebhookState.FAILED
    repository.record_webhook(ended.id, stopped)
    assert outbox(path) == []
    assert repository.get(ended.id).webhook == stopped


# --- list_owned ----------------------------------------------------------------------------------


def test_list_owned_pages_through_an_owners_jobs_newest_first_missing_none(repository, clock):
    # Given 25 jobs of one owner, some made in the same microsecond, and 5 of another's
    mine = []
    for number in range(25):
        if number % 3:
            clock.advance(seconds=1)
        mine.append(repository.create(a_job(clock)))
    for _ in range(5):
        repository.create(a_job(clock, owner="key-2"))
    # When they are read 7 at a time
    seen, after = [], None
    while True:
        page = repository.list_owned("key-1", status=None, limit=7, after=after)
        assert len(page.jobs) <= 7
        seen.extend(page.jobs)
        if page.next_after is None:
            break
        after = page.next_after
    # Then every one of the owner's jobs is seen once, newest first, and nobody else's
    assert [job.id for job in seen] == [job.id for job in sorted(mine, key=listing_key, reverse=True)]
    assert seen[0] == repository.get(seen[0].id)
    assert len(repository.list_owned("key-2", status=None, limit=100, after=None).jobs) == 5
    assert repository.list_owned("key-3", status=None, limit=10, after=None) == JobPage(jobs=(), next_after=None)


def test_list_owned_an_exact_page_is_the_last(repository, clock):
    for _ in range(4):
        clock.advance(seconds=1)
        repository.create(a_job(clock))
    page = repository.list_owned("key-1", status=None, limit=4, after=None)
    assert len(page.jobs) == 4 and page.next_after is None


def test_list_owned_by_status_lists_only_jobs_with_it(repository, clock):
    # Given an owner's queued, running and failed jobs
    jobs = []
    for _ in range(9):
        clock.advance(seconds=1)
        jobs.append(repository.create(a_job(clock)))
    for job in jobs[:3]:
        repository.update(job.id, JobChange(status=JobStatus.FAILED))
    for job in jobs[3:5]:
        repository.update(job.id, JobChange(status=JobStatus.RUNNING, stage=Stage.PROBE))
    # Then each status lists its own, newest first, page by page
    failed, after = [], None
    while True:
        page = repository.list_owned("key-1", status=JobStatus.FAILED, limit=2, after=after)
        failed.extend(job.id for job in page.jobs)
        if page.next_after is None:
            break
        after = page.next_after
    assert failed == [job.id for job in reversed(jobs[:3])]
    running = repository.list_owned("key-1", status=JobStatus.RUNNING, limit=10, after=None)
    assert [job.status for job in running.jobs] == [JobStatus.RUNNING] * 2
    assert len(repository.list_owned("key-1", status=JobStatus.QUEUED, limit=10, after=None).jobs) == 4
    assert repository.list_owned("key-1", status=JobStatus.SUCCEEDED, limit=10, after=None).jobs == ()


def test_list_owned_by_status_over_many_other_jobs_ends_pages_short_but_goes_on(clock, tmp_path, monkeypatch):
    """DynamoDB reads a bounded number of items per page of a filtered listing; the next page goes on from there."""
    monkeypatch.setattr(dynamo_job_repository, "_FILTERED_READ_BUDGET", 30)
    with opened_repository("dynamodb", clock, tmp_path) as repository:
        # Given one failed job, older than more queued ones than a page reads
        oldest = repository.create(a_job(clock))
        repository.update(oldest.id, JobChange(status=JobStatus.FAILED))
        budget = dynamo_job_repository._FILTERED_READ_BUDGET
        for _ in range(budget + 5):
            clock.advance(seconds=1)
            repository.create(a_job(clock))
        # Then the first page is empty but names where it stopped, and the next finds the failed job
        first = repository.list_owned("key-1", status=JobStatus.FAILED, limit=10, after=None)
        assert first.jobs == () and first.next_after is not None
        second = repository.list_owned("key-1", status=JobStatus.FAILED, limit=10, after=first.next_after)
        assert [job.id for job in second.jobs] == [oldest.id] and second.next_after is None
