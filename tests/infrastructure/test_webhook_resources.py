"""The synthesized webhook delivery: its queue, its function's event source, and who may send, read secrets or consume."""

from __future__ import annotations

import pytest

from clipline.domain.webhooks import RetrySchedule
from infra.webhooks import MAX_RECEIVE_COUNT, WebhookDelivery, receives_needed
from infra.stack import WEBHOOK_ANNOUNCERS

from .conftest import stage_config
from .test_template import (
    _function_actions,
    as_list,
    env_name,
    function_named,
    resources,
    role_of_function,
    statements_of_role,
)


def _webhook_queues(template: dict) -> tuple[str, dict, str]:
    queues = resources(template, "AWS::SQS::Queue")
    deliveries = next(name for name in queues if name.startswith("WebhooksDeliveries"))
    dead_letters = next(name for name in queues if name.startswith("WebhooksDeadLetters"))
    return deliveries, queues[deliveries]["Properties"], dead_letters


def test_the_delivery_queue_keeps_messages_past_the_schedule_and_outlives_its_function(dev_template_json) -> None:
    deliveries, queue, dead_letters = _webhook_queues(dev_template_json)
    _, deliverer = function_named(dev_template_json, "dev", "DeliverWebhook")
    assert queue["VisibilityTimeout"] > deliverer["Timeout"]
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dead_letters, "Arn"]},
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    }


def test_the_deliverer_takes_one_message_at_a_time_and_reports_each_failure(template, dev_template_json) -> None:
    deliveries, _, _ = _webhook_queues(dev_template_json)
    deliverer, _ = function_named(dev_template_json, "dev", "DeliverWebhook")
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": deliverer},
            "EventSourceArn": {"Fn::GetAtt": [deliveries, "Arn"]},
            "BatchSize": 1,
            "ScalingConfig": {"MaximumConcurrency": stage_config("dev").webhook_max_concurrency},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )


def test_every_function_that_ends_a_job_may_queue_its_webhook_and_the_deliverer_only_consume(dev_template_json) -> None:
    deliveries, _, _ = _webhook_queues(dev_template_json)
    for name in (*WEBHOOK_ANNOUNCERS, "DeliverWebhook"):
        _, function = function_named(dev_template_json, "dev", name)
        assert function["Environment"]["Variables"][env_name("webhook_queue_url")] == {"Ref": deliveries}, name
    for name in WEBHOOK_ANNOUNCERS:
        assert "sqs:SendMessage" in _function_actions(dev_template_json, "dev", name), name
    # The deliverer consumes the queue, changing what it received, and sends only to the dead-letter queue
    _, _, dead_letters = _webhook_queues(dev_template_json)
    _, deliverer = function_named(dev_template_json, "dev", "DeliverWebhook")
    statements = statements_of_role(dev_template_json, role_of_function(deliverer))
    sends_to = [
        statement["Resource"] for statement in statements if "sqs:SendMessage" in as_list(statement["Action"])
    ]
    assert sends_to == [{"Fn::GetAtt": [dead_letters, "Arn"]}]
    consumes = {action for statement in statements for action in as_list(statement["Action"]) if action.startswith("sqs:")}
    assert {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage"} <= consumes


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_only_the_deliverer_may_read_or_make_signing_secrets_and_only_under_its_prefix(synthesis, stage) -> None:
    template = synthesis.templates[stage]
    readers = {}
    for logical_id, function in resources(template, "AWS::Lambda::Function").items():
        for statement in statements_of_role(template, role_of_function(function["Properties"])):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(action.startswith("secretsmanager:") for action in actions):
                readers[function["Properties"]["FunctionName"]] = (actions, statement["Resource"])
    # The openai stage's worker reads its provider key too; no other stage here has one.
    assert list(readers) == [f"clipline-{stage}-DeliverWebhook"]
    actions, resource = readers[f"clipline-{stage}-DeliverWebhook"]
    assert sorted(actions) == ["secretsmanager:CreateSecret", "secretsmanager:GetSecretValue"]
    assert f":secret:clipline-{stage}/webhook-secrets/*" in str(resource)
    _, deliverer = function_named(template, stage, "DeliverWebhook")
    assert deliverer["Environment"]["Variables"][env_name("webhook_secrets_prefix")] == f"clipline-{stage}/webhook-secrets"
    assert template["Outputs"]["WebhookSecretsPrefix"]["Value"] == f"clipline-{stage}/webhook-secrets"


def test_the_webhook_functions_never_touch_artifacts(dev_template_json) -> None:
    for name in ("DeliverWebhook", "RedeliverWebhook"):
        actions = _function_actions(dev_template_json, "dev", name)
        assert "dynamodb:UpdateItem" in actions or "dynamodb:PutItem" in actions, name
        assert not [action for action in actions if action.startswith("s3:")], name


def test_a_dead_lettered_webhook_raises_an_alarm(dev_template_json) -> None:
    _, _, dead_letters = _webhook_queues(dev_template_json)
    alarms = [
        alarm["Properties"]
        for alarm in resources(dev_template_json, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Dimensions") == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letters, "QueueName"]}}]
    ]
    assert len(alarms) == 1 and alarms[0]["Threshold"] == 0 and alarms[0]["AlarmActions"]


def test_a_schedule_sqs_cannot_hold_is_refused_at_synth() -> None:
    # Two weeks of retries outlive SQS's retention: the messages would vanish, not dead-letter.
    with pytest.raises(ValueError, match="longer than SQS keeps"):
        WebhookDelivery.check_schedule(RetrySchedule((3600.0,) * 24 * 14))
    # A wait longer than a visibility timeout can hold (under 12 h), jitter included, takes several receives:
    # a day stretched by a fifth is three of them, so the two attempts and the look in between make five
    assert receives_needed(RetrySchedule((5, 86400))) == 5
