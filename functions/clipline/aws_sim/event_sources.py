"""What Lambda, DynamoDB and EventBridge do between the stack's resources, as the deployed configuration says.

- An SQS event source mapping: pollers, as many as its ``MaximumConcurrency``,
  receive up to ``BatchSize`` messages, invoke the function, and delete what it
  handled (all, or all but its ``batchItemFailures``). The rest become visible
  again after the queue's visibility timeout, and its redrive policy counts them.
- A DynamoDB stream mapping: one poller per shard, from ``StartingPosition``,
  records kept only if they match ``FilterCriteria``; a failed batch is retried
  from its first failed record ``MaximumRetryAttempts`` times, then sent to the
  ``OnFailure`` destination.
- Time to live: items whose TTL attribute passed at least ``delay`` seconds ago
  are deleted (DynamoDB takes up to a few days), and their stream records carry
  DynamoDB's service identity, as TTL's do.
- EventBridge rules with Lambda targets (moto's EventBridge does not deliver to
  Lambda): each execution that ends is an "Execution Status Change" event,
  matched against every rule and delivered to its Lambda targets.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any, Callable

from moto.events.models import EventPattern

from .lambda_host import InvocationResult

log = logging.getLogger("clipline.aws_sim")

Invoke = Callable[[str, bytes], InvocationResult]
ClientFactory = Callable[[str], Any]

_POLL_PAUSE_SECONDS = 0.5
_TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
_ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


class _Loop:
    """A daemon thread that runs ``step`` until stopped; one failed step is logged, not fatal."""

    def __init__(self, name: str, step: Callable[[], bool], stop: threading.Event) -> None:
        self._step = step
        self._stop = stop
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self._step()
            except Exception:  # noqa: BLE001 - a poller outlives one bad round, as Lambda's do
                log.exception("%s failed a round", self.thread.name)
                busy = False
            if not busy:
                self._stop.wait(_POLL_PAUSE_SECONDS)


def _batch_item_failures(result: InvocationResult) -> list[str] | None:
    """The ids the function reported as failed; None when it failed as a whole."""
    if result.failed:
        return None
    try:
        answer = json.loads(result.payload or b"null")
    except ValueError:
        return []
    if not isinstance(answer, dict):
        return []
    return [item["itemIdentifier"] for item in answer.get("batchItemFailures") or []]


class SqsEventSource:
    def __init__(self, mapping: dict, clients: ClientFactory, invoke: Invoke, region: str, stop: threading.Event):
        self._mapping = mapping
        self._invoke = invoke
        self._region = region
        arn = mapping["EventSourceArn"]
        self._queue_arn = arn
        account, name = arn.split(":")[4], arn.split(":")[5]
        self._queue_url = clients("sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        concurrency = (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency") or 5
        for index in range(concurrency):
            _Loop(f"sqs-poller-{name}-{index}", self._poller(clients("sqs")), stop)

    def _poller(self, sqs: Any) -> Callable[[], bool]:
        def step() -> bool:
            received = sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(self._mapping.get("BatchSize", 10), 10),
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not received:
                return False
            records = [self._record(message) for message in received]
            result = self._invoke(self._mapping["FunctionArn"], json.dumps({"Records": records}).encode())
            failures = _batch_item_failures(result)
            if failures is None:
                return True  # the whole batch comes back after the visibility timeout
            reports_items = "ReportBatchItemFailures" in (self._mapping.get("FunctionResponseTypes") or [])
            for message in received:
                if reports_items and message["MessageId"] in failures:
                    continue
                sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
            return True

        return step

    def _record(self, message: dict) -> dict:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            # Lambda's records spell the attribute fields in camel case (stringValue, dataType).
            "messageAttributes": {
                name: {key[0].lower() + key[1:]: value for key, value in attribute.items()}
                for name, attribute in (message.get("MessageAttributes") or {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn,
            "awsRegion": self._region,
        }


class TimeToLive:
    """DynamoDB's TTL process for one table: expired items are deleted, as the service principal."""

    def __init__(
        self, table: str, attribute: str, clients: ClientFactory, stop: threading.Event, interval: float, delay: float
    ):
        self._table = table
        self._delay = delay
        self._attribute = attribute
        self._dynamodb = clients("dynamodb")
        self._interval = interval
        self._last = 0.0
        self._key_names = [key["AttributeName"] for key in self._dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]]
        # Keys TTL removed, so their stream records can say who removed them.
        self._removed: set[str] = set()
        self._lock = threading.Lock()
        _Loop(f"ttl-{table}", self._step, stop)

    def removed_by_ttl(self, keys: dict) -> bool:
        with self._lock:
            return json.dumps(keys, sort_keys=True) in self._removed

    def _step(self) -> bool:
        if time.monotonic() - self._last < self._interval:
            return False
        self._last = time.monotonic()
        now = str(int(time.time() - self._delay))
        pages = self._dynamodb.get_paginator("scan").paginate(
            TableName=self._table,
            FilterExpression="#ttl < :now",
            ExpressionAttributeNames={"#ttl": self._attribute},
            ExpressionAttributeValues={":now": {"N": now}},
        )
        for page in pages:
            for item in page.get("Items", []):
                keys = {name: item[name] for name in self._key_names}
                with self._lock:
                    self._removed.add(json.dumps(keys, sort_keys=True))
                try:
                    self._dynamodb.delete_item(
                        TableName=self._table,
                        Key=keys,
                        ConditionExpression="#ttl < :now",
                        ExpressionAttributeNames={"#ttl": self._attribute},
                        ExpressionAttributeValues={":now": {"N": now}},
                    )
                except self._dynamodb.exceptions.ConditionalCheckFailedException:
                    pass  # extended meanwhile
        return False


class StreamEventSource:
    def __init__(
        self,
        mapping: dict,
        clients: ClientFactory,
        invoke: Invoke,
        region: str,
        stop: threading.Event,
        ttl_of: Callable[[str], TimeToLive | None],
    ):
        self._mapping = mapping
        self._invoke = invoke
        self._region = region
        self._streams = clients("dynamodbstreams")
        self._sqs = clients("sqs")
        self._stream_arn = mapping["EventSourceArn"]
        self._table = self._stream_arn.split(":table/")[1].split("/stream/")[0]
        self._ttl_of = ttl_of
        self._patterns = [
            EventPattern.load(item["Pattern"]) for item in (mapping.get("FilterCriteria") or {}).get("Filters", [])
        ]
        # The sequence number of the last record read, per shard.
        self._last_read: dict[str, str] = {}
        self._pending: list[dict] = []
        self._attempts = 0
        _Loop(f"stream-poller-{self._table}", self._step, stop)

    def _step(self) -> bool:
        if not self._pending:
            self._pending = [record for record in self._read() if self._wanted(record)]
        if not self._pending:
            return False
        batch = self._pending[: self._mapping.get("BatchSize", 100)]
        result = self._invoke(self._mapping["FunctionArn"], json.dumps({"Records": batch}, default=str).encode())
        failures = _batch_item_failures(result)
        if failures == []:
            del self._pending[: len(batch)]
            self._attempts = 0
            return True
        first_failed = 0
        if failures:
            numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
            first_failed = min(numbers.index(number) for number in failures if number in numbers)
        del self._pending[:first_failed]
        self._attempts += 1
        if self._attempts > self._mapping.get("MaximumRetryAttempts", 0):
            self._send_to_failure_destination(batch[first_failed:])
            del self._pending[: len(batch) - first_failed]
            self._attempts = 0
        return True

    def _read(self) -> list[dict]:
        """The records after the last one read, from a fresh iterator each round.

        Lambda's pollers renew iterators too (they expire after 15 minutes). Here it also
        matters because moto restores a table from a copy when a transaction is cancelled,
        and an old iterator keeps reading the shard of the copy that was replaced.
        """
        records: list[dict] = []
        shards = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            # Until a first record is read, a LATEST mapping starts afresh each round; ours read from TRIM_HORIZON.
            last = self._last_read.get(shard_id)
            position = (
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last}
                if last
                else {"ShardIteratorType": self._mapping.get("StartingPosition", "LATEST")}
            )
            iterator = self._streams.get_shard_iterator(StreamArn=self._stream_arn, ShardId=shard_id, **position)
            read = self._streams.get_records(ShardIterator=iterator["ShardIterator"]).get("Records", [])
            if read:
                self._last_read[shard_id] = read[-1]["dynamodb"]["SequenceNumber"]
            records.extend(self._event_record(record) for record in read)
        return records

    def _event_record(self, record: dict) -> dict:
        event = {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": self._region,
            "dynamodb": {
                key: (value.timestamp() if isinstance(value, datetime) else value)
                for key, value in record["dynamodb"].items()
            },
            "eventSourceARN": self._stream_arn,
        }
        ttl = self._ttl_of(self._table)
        if record["eventName"] == "REMOVE" and ttl is not None and ttl.removed_by_ttl(record["dynamodb"].get("Keys", {})):
            event["userIdentity"] = dict(_TTL_IDENTITY)
        return event

    def _wanted(self, record: dict) -> bool:
        return not self._patterns or any(pattern.matches_event(record) for pattern in self._patterns)

    def _send_to_failure_destination(self, records: list[dict]) -> None:
        destination = ((self._mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        log.error("stream records failed every retry", extra={"count": len(records), "destination": destination})
        if not destination or ":sqs:" not in destination:
            return
        account, name = destination.split(":")[4], destination.split(":")[5]
        url = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        numbers = [record["dynamodb"]["SequenceNumber"] for record in records]
        self._sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps(
                {
                    "requestContext": {"functionArn": self._mapping["FunctionArn"], "condition": "RetryAttemptsExhausted"},
                    "DDBStreamBatchInfo": {
                        "streamArn": self._stream_arn,
                        "startSequenceNumber": numbers[0],
                        "endSequenceNumber": numbers[-1],
                        "batchSize": len(records),
                    },
                    "timestamp": datetime.now(UTC).isoformat(),
                }
            ),
        )


class ExecutionStatusEvents:
    """Step Functions' "Execution Status Change" events, delivered to the Lambda targets of matching rules."""

    def __init__(self, clients: ClientFactory, invoke: Invoke, account_id: str, region: str, stop: threading.Event):
        self._sfn = clients("stepfunctions")
        self._events = clients("events")
        self._invoke = invoke
        self._account_id = account_id
        self._region = region
        self._seen: set[str] = set()
        _Loop("execution-status-events", self._step, stop)

    def _step(self) -> bool:
        machines = [m["stateMachineArn"] for m in self._sfn.list_state_machines()["stateMachines"]]
        for machine in machines:
            pages = self._sfn.get_paginator("list_executions").paginate(stateMachineArn=machine)
            for execution in (item for page in pages for item in page["executions"]):
                if execution["status"] not in _ENDED or execution["executionArn"] in self._seen:
                    continue
                self._seen.add(execution["executionArn"])
                description = self._sfn.describe_execution(executionArn=execution["executionArn"])
                self._deliver(self._event(machine, description))
        return False

    def _event(self, machine: str, description: dict) -> dict:
        return {
            "version": "0",
            "id": description["executionArn"].rsplit(":", 1)[-1],
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "account": self._account_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self._region,
            "resources": [description["executionArn"]],
            "detail": {
                "executionArn": description["executionArn"],
                "stateMachineArn": machine,
                "name": description["name"],
                "status": description["status"],
                "startDate": int(description["startDate"].timestamp() * 1000),
                "stopDate": int(description["stopDate"].timestamp() * 1000) if description.get("stopDate") else None,
                "input": description.get("input"),
                "output": description.get("output"),
                "error": description.get("error"),
                "cause": description.get("cause"),
            },
        }

    def _deliver(self, event: dict) -> None:
        for rule in self._events.list_rules()["Rules"]:
            if rule.get("State") != "ENABLED" or not rule.get("EventPattern"):
                continue
            if not EventPattern.load(rule["EventPattern"]).matches_event(event):
                continue
            for target in self._events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
                if ":lambda:" in target["Arn"]:
                    result = self._invoke(target["Arn"], json.dumps(event).encode())
                    if result.failed:
                        log.error("a rule's Lambda target failed", extra={"rule": rule["Name"], "error": result.error_type})
