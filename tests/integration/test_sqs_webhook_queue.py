"""The AWS webhook queue on moto's SQS: what it sends, how it postpones a received message, and the dead-letter path."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from clipline.adapters.aws.sqs_webhook_queue import MAX_VISIBILITY_SECONDS, SqsWebhookQueue, WebhookQueueMessage


@pytest.fixture
def sqs(monkeypatch):
    # A session of its own: boto3's default one would keep these credentials for later tests.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.session.Session(region_name="us-east-1").client("sqs")


def _visibility_changes(client) -> list[int]:
    """The VisibilityTimeout of every ChangeMessageVisibility the client sends from now on."""
    sent: list[int] = []
    client.meta.events.register(
        "provide-client-params.sqs.ChangeMessageVisibility",
        lambda params, **_: sent.append(params["VisibilityTimeout"]),
    )
    return sent


def test_a_message_carries_ids_only_and_a_long_wait_is_cut_to_what_sqs_accepts(sqs):
    deliveries = sqs.create_queue(QueueName="deliveries")["QueueUrl"]
    dead_letters = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
    queue = SqsWebhookQueue(sqs, deliveries, dead_letters)
    # Given a message announced for a job's round 2
    queue.announce("job-1", "msg_1", 2)
    (received,) = sqs.receive_message(QueueUrl=deliveries, VisibilityTimeout=30)["Messages"]
    assert json.loads(received["Body"]) == {"jobId": "job-1", "messageId": "msg_1", "round": 2}
    assert WebhookQueueMessage.model_validate_json(received["Body"]).round == 2
    # When it is postponed by a fraction of a second, by a day, and not at all
    sent = _visibility_changes(sqs)
    for seconds in (1.2, 86400.0, 0.0):
        queue.postpone(received["ReceiptHandle"], seconds)
    # Then the first comes back in whole seconds, never early; the day is cut to less than the 12 hours
    # SQS allows from the receipt (the rest is a later "waiting" look); the last is visible at once
    assert sent == [2, MAX_VISIBILITY_SECONDS, 0]
    assert MAX_VISIBILITY_SECONDS < 12 * 3600


def test_a_message_given_up_on_is_kept_in_the_dead_letter_queue(sqs):
    deliveries = sqs.create_queue(QueueName="deliveries")["QueueUrl"]
    dead_letters = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
    queue = SqsWebhookQueue(sqs, deliveries, dead_letters)
    queue.announce("job-1", "msg_1", 0)
    (received,) = sqs.receive_message(QueueUrl=deliveries)["Messages"]
    queue.dead_letter(received["Body"])
    (kept,) = sqs.receive_message(QueueUrl=dead_letters)["Messages"]
    assert kept["Body"] == received["Body"]
