"""Jobs in DynamoDB: one item per job, one per idempotency claim, TTL on ``expiresAt``."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, Callable, Collection

from botocore.exceptions import BotoCoreError, ClientError

from ...domain.errors import (
    IdempotencyKeyReusedError,
    JobNotFoundError,
    StorageUnavailableError,
)
from ...domain.job_listing import JobPage, listing_key
from ...domain.jobs import Job, JobChange, JobStatus, apply_change, deleted, with_webhook
from ...domain.ports import IdempotencyClaim
from ...domain.record_versions import CURRENT_SCHEMA_VERSION, DEFAULT_RETENTION
from ...domain.webhooks import Webhook
from .dynamo_migrations import current_document

# Version 2: the document always has expires_at. Older items are upgraded as they are read.
SCHEMA_VERSION = CURRENT_SCHEMA_VERSION
# Optimistic-concurrency retries of one update before giving up; contention is two steps at most.
_UPDATE_ATTEMPTS = 8
# The index that lists an owner's jobs newest first (infra/storage.py creates it), and how many items one
# page of a status-filtered listing may read before it ends short and names where the next page starts.
OWNER_INDEX = "ByOwner"
LISTING_KEY_ATTRIBUTE = "listingKey"
_FILTERED_READ_BUDGET = 1000
# BatchGetItem's limit on keys per call, and its calls for one batch while keys come back unprocessed.
_KEYS_PER_BATCH_GET = 100
_BATCH_GET_ATTEMPTS = 8


def _job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def _claim_pk(claim_owner: str, key: str) -> str:
    return f"IDEMPOTENCY#{claim_owner}#{key}"


class DynamoJobRepository:
    """JobRepository on a DynamoDB table whose partition key is ``pk`` (string).

    The job is kept whole as a JSON document, next to the attributes DynamoDB acts
    on (``status``, ``expiresAt`` for TTL, ``version`` for optimistic locking).
    ``retention`` is the service's; it dates items from before retention existed.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        now: Callable[[], datetime],
        *,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self._client = client
        self._table = table_name
        self._now = now
        self._retention = retention

    def _item(self, job: Job, version: int, claim_pk: str | None = None) -> dict[str, Any]:
        item = {
            "pk": {"S": _job_pk(job.id)},
            "type": {"S": "job"},
            "owner": {"S": job.owner},
            LISTING_KEY_ATTRIBUTE: {"S": listing_key(job)},
            "status": {"S": job.status.value},
            "expiresAt": {"N": str(int(job.expires_at.timestamp()))},
            "version": {"N": str(version)},
            "schemaVersion": {"N": str(SCHEMA_VERSION)},
            "document": {"S": job.model_dump_json()},
        }
        if claim_pk:
            # Lets delete() remove the claim with the job.
            item["claimPk"] = {"S": claim_pk}
        return item

    def create(self, job: Job, claim: IdempotencyClaim | None = None) -> Job:
        claim_pk = _claim_pk(claim.owner, claim.key) if claim else None
        put_job = {
            "TableName": self._table,
            "Item": self._item(job, 1, claim_pk),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        try:
            if claim is None:
                self._client.put_item(**put_job)
                return job
            self._client.transact_write_items(
                TransactItems=[
                    {"Put": put_job},
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": {"S": claim_pk},
                                "type": {"S": "idempotencyClaim"},
                                "requestHash": {"S": claim.request_hash},
                                "jobId": {"S": job.id},
                                "expiresAt": {"N": str(int(claim.expires_at.timestamp()))},
                            },
                            # An expired claim may linger until TTL removes it; it no longer counts.
                            "ConditionExpression": "attribute_not_exists(pk) OR expiresAt < :now",
                            "ExpressionAttributeValues": {":now": {"N": str(int(self._now().timestamp()))}},
                        }
                    },
                ]
            )
            return job
        except ClientError as error:
            if claim is not None and error.response["Error"]["Code"] == "TransactionCanceledException":
                return self._existing_for_claim(claim)
            raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error

    def _existing_for_claim(self, claim: IdempotencyClaim) -> Job:
        item = self._get_item(_claim_pk(claim.owner, claim.key))
        if item is None:
            raise StorageUnavailableError("the idempotency claim changed while the job was created; retry")
        if item["requestHash"]["S"] != claim.request_hash:
            raise IdempotencyKeyReusedError("this Idempotency-Key was already used with a different request")
        return self.get(item["jobId"]["S"])

    def _get_item(self, pk: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=self._table, Key={"pk": {"S": pk}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
        return response.get("Item")

    def _read(self, job_id: str) -> tuple[Job, int, str | None]:
        item = self._get_item(_job_pk(job_id))
        if item is None:
            raise JobNotFoundError(f"job {job_id} not found")
        claim_pk = item["claimPk"]["S"] if "claimPk" in item else None
        job = self._job(item)
        return job, int(item["version"]["N"]), claim_pk

    def get(self, job_id: str) -> Job:
        return self._read(job_id)[0]

    def update(self, job_id: str, change: JobChange) -> Job:
        return self._rewrite(job_id, lambda job: apply_change(job, change, self._now()))

    def record_webhook(self, job_id: str, webhook: Webhook) -> Job:
        return self._rewrite(job_id, lambda job: with_webhook(job, webhook))

    def mark_deleted(self, job_id: str) -> Job:
        return self._rewrite(job_id, lambda job: deleted(job, self._now()))

    def _rewrite(self, job_id: str, change: Callable[[Job], Job]) -> Job:
        """Read, change and write the job back under its version, again if another write came between."""
        for _ in range(_UPDATE_ATTEMPTS):
            job, version, claim_pk = self._read(job_id)
            updated = change(job)
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item=self._item(updated, version + 1, claim_pk),
                    ConditionExpression="version = :version",
                    ExpressionAttributeValues={":version": {"N": str(version)}},
                )
                return updated
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise _unavailable(error) from error
            except BotoCoreError as error:
                raise _unavailable(error) from error
        raise StorageUnavailableError(f"job {job_id} kept changing underneath an update")

    def delete(self, job_id: str) -> None:
        try:
            _, _, claim_pk = self._read(job_id)
        except JobNotFoundError:
            return
        keys = [_job_pk(job_id), *([claim_pk] if claim_pk else [])]
        try:
            self._client.transact_write_items(
                TransactItems=[{"Delete": {"TableName": self._table, "Key": {"pk": {"S": pk}}}} for pk in keys]
            )
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error

    def missing(self, job_ids: Collection[str]) -> set[str]:
        wanted = sorted(set(job_ids))
        found: set[str] = set()
        try:
            for start in range(0, len(wanted), _KEYS_PER_BATCH_GET):
                keys = [{"pk": {"S": _job_pk(job_id)}} for job_id in wanted[start : start + _KEYS_PER_BATCH_GET]]
                request = {self._table: {"Keys": keys, "ProjectionExpression": "pk", "ConsistentRead": True}}
                for attempt in range(_BATCH_GET_ATTEMPTS):
                    reply = self._client.batch_get_item(RequestItems=request)
                    found.update(item["pk"]["S"].removeprefix("JOB#") for item in reply["Responses"].get(self._table, []))
                    request = reply.get("UnprocessedKeys") or {}
                    if not request:
                        break
                    # Keys come back unprocessed when the table is busy; AWS asks for backoff before trying them again.
                    time.sleep(min(0.05 * 2**attempt, 2))
                else:
                    raise StorageUnavailableError("DynamoDB left keys unprocessed through every retry")
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
        return set(wanted) - found

    def list_expired(self, now: datetime, limit: int) -> list[Job]:
        items = scan_expired(self._client, self._table, "job", now, limit)
        return [self._job(item) for item in items]

    def list_owned(self, owner: str, *, status: JobStatus | None, limit: int, after: str | None) -> JobPage:
        """A query of the owner's partition of the ByOwner index, newest first.

        A status is a filter on that query, and DynamoDB applies ``Limit`` before
        filters, so the query goes on page by page until it has ``limit`` jobs; once it
        has read _FILTERED_READ_BUDGET items it ends the page short, at the last item read.
        """
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": "#owner = :owner" + (" AND #listingKey < :after" if after else ""),
            "ExpressionAttributeNames": {"#owner": "owner", **({"#listingKey": LISTING_KEY_ATTRIBUTE} if after else {})},
            "ExpressionAttributeValues": {":owner": {"S": owner}, **({":after": {"S": after}} if after else {})},
            "ScanIndexForward": False,
        }
        if status is not None:
            query["FilterExpression"] = "#status = :status"
            query["ExpressionAttributeNames"]["#status"] = "status"
            query["ExpressionAttributeValues"][":status"] = {"S": status.value}
        found: list[dict[str, Any]] = []
        read = 0
        try:
            while True:
                # One more than wanted tells whether a page follows without another call.
                reply = self._client.query(**query, Limit=min(limit + 1 - len(found), _FILTERED_READ_BUDGET - read) or 1)
                found.extend(reply.get("Items", []))
                read += reply["ScannedCount"]
                last = reply.get("LastEvaluatedKey")
                if len(found) > limit or last is None:
                    break
                if read >= _FILTERED_READ_BUDGET:
                    jobs = tuple(self._job(item) for item in found)
                    return JobPage(jobs=jobs, next_after=last[LISTING_KEY_ATTRIBUTE]["S"])
                query["ExclusiveStartKey"] = last
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
        jobs = tuple(self._job(item) for item in found[:limit])
        return JobPage(jobs=jobs, next_after=listing_key(jobs[-1]) if len(found) > limit else None)

    def _job(self, item: dict[str, Any]) -> Job:
        """The job an item holds, its document upgraded from an older schema version if need be."""
        return Job.model_validate_json(current_document(item, self._retention))

    def list_unfinished(self, limit: int) -> list[Job]:
        """A filtered scan of the whole table, for recovery only.

        Nothing in AWS calls it: an execution that ends unfinished reports itself through
        EventBridge. It keeps the port whole for tools and the contract suite.
        """
        found: list[dict[str, Any]] = []
        try:
            for page in self._client.get_paginator("scan").paginate(
                TableName=self._table,
                FilterExpression="#type = :type AND #status IN (:queued, :running)",
                ExpressionAttributeNames={"#type": "type", "#status": "status"},
                ExpressionAttributeValues={
                    ":type": {"S": "job"},
                    ":queued": {"S": JobStatus.QUEUED.value},
                    ":running": {"S": JobStatus.RUNNING.value},
                },
            ):
                found.extend(page.get("Items", []))
                if len(found) >= limit:
                    break
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
        return [self._job(item) for item in found[:limit]]


def scan_expired(client: Any, table: str, item_type: str, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Items of ``item_type`` past ``expiresAt``. In AWS, TTL removes them (up to days late); this finds them sooner."""
    found: list[dict[str, Any]] = []
    try:
        for page in client.get_paginator("scan").paginate(
            TableName=table,
            FilterExpression="#type = :type AND expiresAt <= :now",
            ExpressionAttributeNames={"#type": "type"},
            ExpressionAttributeValues={":type": {"S": item_type}, ":now": {"N": str(int(now.timestamp()))}},
        ):
            found.extend(page.get("Items", []))
            if len(found) >= limit:
                break
    except (ClientError, BotoCoreError) as error:
        raise _unavailable(error) from error
    return found[:limit]


def _unavailable(error: Exception) -> StorageUnavailableError:
    return StorageUnavailableError(f"DynamoDB call failed: {error}")
