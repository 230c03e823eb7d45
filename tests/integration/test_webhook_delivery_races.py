"""deliver_webhook and redeliver_webhook meeting on one job, over the real SQLite job store and secrets.

The receiver is a WebhookSender that answers in-process, so a test can act at the
exact moment an attempt is in flight; the HTTP sender has its own suite.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from clipline.adapters.local.sqlite_job_repository import SqliteJobRepository
from clipline.adapters.local.sqlite_webhook_secrets import SqliteWebhookSecrets
from clipline.api.schemas import job_view_document
from clipline.domain.jobs import ClipRequest, JobChange, JobStatus, Stage, new_job
from clipline.domain.ports import WebhookResponse
from clipline.domain.use_cases import deliver_webhook, record_execution_end, redeliver_webhook
from clipline.domain.use_cases.webhooks import ended_with
from clipline.domain.webhooks import RetrySchedule, WebhookState
from tests.fakes import FixedClock, fake_services


class InFlightReceiver:
    """Answers ``status`` to every POST; ``during`` runs while the first one is in flight."""

    def __init__(self, status: int, during=None) -> None:  # noqa: ANN001
        self.status = status
        self.during = during
        self.posts: list[dict[str, str]] = []

    def post(self, url: str, headers: dict[str, str], body: bytes) -> WebhookResponse:
        self.posts.append(headers)
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return WebhookResponse(self.status)


def _ended_job_with_webhook(services, clock):
    request = ClipRequest(source_url="https://example.com/a.mp4", start_seconds=1, end_seconds=2)
    job = new_job(request, owner="key-1", correlation_id="cid", now=clock.now(), retention=timedelta(days=1),
                  webhook_url="https://example.com/hooks")  # fmt: skip
    services.jobs.create(job)
    services.jobs.update(job.id, JobChange(status=JobStatus.RUNNING, stage=Stage.PROBE))
    webhook = ended_with(job, JobStatus.SUCCEEDED, clock.now())
    return services.jobs.update(job.id, JobChange(status=JobStatus.SUCCEEDED, stage=Stage.DONE, webhook=webhook))


def _services(tmp_path, clock, receiver):
    path = tmp_path / "clipline.sqlite3"
    services = fake_services(
        clock,
        jobs=SqliteJobRepository(path, clock.now),
        webhook_sender=receiver,
        webhook_secrets=SqliteWebhookSecrets(path, clock.now),
    )
    return replace(services, limits=replace(services.limits, webhook_schedule=RetrySchedule((5.0, 5.0))))


def test_an_attempt_in_flight_when_a_redelivery_begins_does_not_undo_it(tmp_path):
    clock = FixedClock()
    # Given an ended job whose first attempt fails while a redelivery is asked for
    receiver = InFlightReceiver(500)
    services = _services(tmp_path, clock, receiver)
    job = _ended_job_with_webhook(services, clock)
    receiver.during = lambda: redeliver_webhook(services, job.id, owner="key-1")
    # When the attempt ends
    outcome = deliver_webhook(services, job.id, job.webhook.message_id, job_view_document)
    # Then its record gave way to the redelivery, which is pending in a round of its own, due now
    assert outcome.outcome == "skipped"
    webhook = services.jobs.get(job.id).webhook
    assert (webhook.state, webhook.round, webhook.attempt_count) == (WebhookState.PENDING, 1, 0)
    assert webhook.next_attempt_at == clock.now()
    # And the redelivery's round sends the same message, and a message of the old round is skipped
    receiver.status = 204
    assert deliver_webhook(services, job.id, job.webhook.message_id, job_view_document, round=0).outcome == "skipped"
    assert deliver_webhook(services, job.id, job.webhook.message_id, job_view_document, round=1).outcome == "delivered"
    assert [headers["webhook-id"] for headers in receiver.posts] == [job.webhook.message_id] * 2


def test_a_message_due_later_is_left_waiting_and_one_delivered_is_not_sent_again(tmp_path):
    clock = FixedClock()
    receiver = InFlightReceiver(503)
    services = _services(tmp_path, clock, receiver)
    job = _ended_job_with_webhook(services, clock)
    # Given a first attempt that failed
    first = deliver_webhook(services, job.id, job.webhook.message_id, job_view_document)
    assert first.outcome == "retrying" and 4 <= first.retry_in_seconds <= 6
    # When the message comes back before its retry is due, Then nothing is sent
    early = deliver_webhook(services, job.id, job.webhook.message_id, job_view_document)
    assert early.outcome == "waiting" and len(receiver.posts) == 1
    # And once due it is sent, and once delivered a repeat sends nothing
    receiver.status = 200
    clock.advance(seconds=7)
    assert deliver_webhook(services, job.id, job.webhook.message_id, job_view_document).outcome == "delivered"
    assert deliver_webhook(services, job.id, job.webhook.message_id, job_view_document).outcome == "skipped"
    assert len(receiver.posts) == 2


def test_of_two_attempts_of_one_round_made_at_once_the_first_recorded_stands(tmp_path):
    clock = FixedClock()
    receiver = InFlightReceiver(204)
    services = _services(tmp_path, clock, receiver)
    job = _ended_job_with_webhook(services, clock)
    message_id = job.webhook.message_id
    inner: list[str] = []

    def second_attempt_meanwhile() -> None:
        # The same queue message received twice: a second attempt starts, is answered 204 and recorded
        inner.append(deliver_webhook(services, job.id, message_id, job_view_document).outcome)
        receiver.status = 503  # and the first attempt's answer, still in flight, is a 503

    receiver.during = second_attempt_meanwhile
    # When the first attempt ends after the second was recorded
    outcome = deliver_webhook(services, job.id, message_id, job_view_document)
    # Then the delivery stands: the late 503 neither reopens it nor enters its history
    assert inner == ["delivered"] and outcome.outcome == "skipped"
    webhook = services.jobs.get(job.id).webhook
    assert webhook.state is WebhookState.DELIVERED
    assert [attempt.status for attempt in webhook.attempts] == [204]


class RecordingQueue:
    def __init__(self) -> None:
        self.announced: list[tuple[str, str, int]] = []

    def announce(self, job_id: str, message_id: str, round: int) -> None:
        self.announced.append((job_id, message_id, round))


def test_an_execution_that_failed_after_the_job_ended_queues_a_webhook_never_tried(tmp_path):
    # Given a job that ended with its webhook due, whose step failed to queue it (so its execution failed)
    clock = FixedClock()
    queue = RecordingQueue()
    services = replace(_services(tmp_path, clock, InFlightReceiver(503)), webhook_queue=queue)
    job = _ended_job_with_webhook(services, clock)
    # When the execution's end is recorded
    assert record_execution_end(services, job.id, "FAILED", "States.TaskFailed", None) is None
    # Then the webhook is queued, and the job is left as it was
    assert queue.announced == [(job.id, job.webhook.message_id, 0)]
    assert services.jobs.get(job.id).status is JobStatus.SUCCEEDED
    # And once an attempt was made, its schedule carries it: a later end queues nothing more
    deliver_webhook(services, job.id, job.webhook.message_id, job_view_document)
    record_execution_end(services, job.id, "FAILED", "States.TaskFailed", None)
    assert len(queue.announced) == 1
