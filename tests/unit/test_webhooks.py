"""Webhook signing and scheduling, checked against the Standard Webhooks reference library."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from clipline.domain.webhooks import (
    DEFAULT_WEBHOOK_SCHEDULE,
    RetrySchedule,
    Webhook,
    WebhookAttempt,
    WebhookEvent,
    WebhookState,
    new_secret,
    sign,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _headers(secret: str, body: bytes, message_id: str = "msg_1") -> dict[str, str]:
    timestamp = int(datetime.now(UTC).timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def test_a_signed_message_verifies_with_the_reference_library():
    secret = new_secret()
    body = json.dumps({"type": "job.succeeded", "data": {"id": "a"}}).encode()
    assert Verifier(secret).verify(body, _headers(secret, body)) == {"type": "job.succeeded", "data": {"id": "a"}}


@pytest.mark.parametrize("tamper", ["body", "id", "secret"])
def test_a_tampered_message_is_rejected_by_the_reference_library(tamper):
    secret = new_secret()
    body = b'{"type":"job.failed"}'
    headers = _headers(secret, body)
    if tamper == "body":
        body = b'{"type":"job.succeeded"}'
    elif tamper == "id":
        headers["webhook-id"] = "msg_2"
    else:
        secret = new_secret()
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(body, headers)


def test_the_default_schedule_retries_for_more_than_a_day_and_first_within_a_minute():
    assert DEFAULT_WEBHOOK_SCHEDULE.total >= timedelta(hours=24)
    assert DEFAULT_WEBHOOK_SCHEDULE.delay_before(2, random.Random(1)) < timedelta(minutes=1)


def test_attempts_end_delivered_on_2xx_stopped_on_410_and_failed_when_the_schedule_runs_out():
    schedule = RetrySchedule.parse("1,2")
    pending = Webhook(url="https://example.com/h").announce(WebhookEvent.SUCCEEDED, NOW)
    assert pending.is_due and pending.message_id.startswith("msg_")
    assert pending.after(WebhookAttempt(at=NOW, status=204), schedule).state is WebhookState.DELIVERED
    assert pending.after(WebhookAttempt(at=NOW, status=410), schedule).state is WebhookState.FAILED
    first = pending.after(WebhookAttempt(at=NOW, status=500), schedule)
    second = first.after(WebhookAttempt(at=NOW, error="timed out"), schedule)
    assert (first.state, second.state) == (WebhookState.PENDING, WebhookState.PENDING)
    assert timedelta(seconds=0.8) <= first.next_attempt_at - NOW <= timedelta(seconds=1.2)
    third = second.after(WebhookAttempt(at=NOW, status=302), schedule)
    assert third.state is WebhookState.FAILED and third.attempt_count == 3
    # A redelivery keeps the message id and starts a new round
    again = third.redeliver(NOW)
    assert (again.state, again.message_id, again.round, again.attempt_count) == (
        WebhookState.PENDING, third.message_id, 1, 0
    )  # fmt: skip
