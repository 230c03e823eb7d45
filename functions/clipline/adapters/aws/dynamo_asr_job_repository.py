"""ASR records and the transcript cache in DynamoDB, in the jobs table.

Items:
- ``ASR#<id>``: one ASR record, kept whole as a JSON document.
- ``TRANSCRIPT#<model version>#<media hash>``: the cache entry, written only with
  ``attribute_not_exists(pk)`` in the same transaction that marks a record done,
  so two workers finishing the same audio cannot both create one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...domain.asr_jobs import AsrJob, AsrStatus
from ...domain.errors import AsrJobNotFoundError, StorageUnavailableError
from ...domain.jobs import JobError
from ...domain.record_versions import CURRENT_SCHEMA_VERSION, DEFAULT_RETENTION
from .dynamo_job_repository import scan_expired
from .dynamo_migrations import current_document

# Version 2: the document always has expires_at. Older items are upgraded as they are read.
SCHEMA_VERSION = CURRENT_SCHEMA_VERSION


def _record_pk(asr_job_id: str) -> str:
    return f"ASR#{asr_job_id}"


def _cache_pk(media_hash: str, model_version: str) -> str:
    return f"TRANSCRIPT#{model_version}#{media_hash}"


def _unavailable(error: Exception) -> StorageUnavailableError:
    return StorageUnavailableError(f"DynamoDB call failed: {error}")


class DynamoAsrJobRepository:
    """AsrJobRepository on the DynamoDB jobs table (partition key ``pk``, TTL on ``expiresAt``).

    ``retention`` is the service's; it dates items from before retention existed.
    """

    def __init__(self, client: Any, table_name: str, *, retention: timedelta = DEFAULT_RETENTION) -> None:
        self._client = client
        self._table = table_name
        self._retention = retention

    def _record_item(self, record: AsrJob) -> dict[str, Any]:
        return {
            "pk": {"S": _record_pk(record.id)},
            "type": {"S": "asrJob"},
            "jobId": {"S": record.job_id},
            "status": {"S": record.status.value},
            "expiresAt": {"N": str(int(record.expires_at.timestamp()))},
            "schemaVersion": {"N": str(SCHEMA_VERSION)},
            "document": {"S": record.model_dump_json()},
        }

    def _call(self, operation: str, **arguments: Any) -> dict[str, Any]:
        try:
            return getattr(self._client, operation)(TableName=self._table, **arguments)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error

    def _put(self, record: AsrJob) -> None:
        self._call("put_item", Item=self._record_item(record))

    def _put_if_running(self, record: AsrJob) -> None:
        """Write ``record`` unless its stored copy has finished: a late heartbeat must not undo a finish."""
        self._conditional_write(
            "put_item",
            Item=self._record_item(record),
            ConditionExpression="#status = :running",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":running": {"S": AsrStatus.RUNNING.value}},
        )

    def _conditional_write(self, operation: str, **arguments: Any) -> None:
        """A write that is skipped, not failed, when its condition does not hold."""
        try:
            getattr(self._client, operation)(TableName=self._table, **arguments)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error

    def create(self, record: AsrJob) -> None:
        self._put(record)

    def get(self, asr_job_id: str) -> AsrJob:
        item = self._call("get_item", Key={"pk": {"S": _record_pk(asr_job_id)}}, ConsistentRead=True).get("Item")
        if item is None:
            raise AsrJobNotFoundError(f"ASR job {asr_job_id} not found")
        return AsrJob.model_validate_json(current_document(item, self._retention))

    def heartbeat(self, asr_job_id: str, at: datetime) -> None:
        self._put_if_running(self.get(asr_job_id).model_copy(update={"last_heartbeat_at": at, "updated_at": at}))

    def find_cached(self, media_hash: str, model_version: str) -> AsrJob | None:
        item = self._call(
            "get_item", Key={"pk": {"S": _cache_pk(media_hash, model_version)}}, ConsistentRead=True
        ).get("Item")
        return AsrJob.model_validate_json(current_document(item, self._retention)) if item else None

    def finish(self, asr_job_id: str, transcript_key: str, at: datetime) -> AsrJob:
        record = self.get(asr_job_id)
        done = record.finished(transcript_key, at)
        cache_entry = {
            **self._record_item(done),
            "pk": {"S": _cache_pk(record.media_hash, record.model_version)},
            "type": {"S": "transcriptCache"},
            "asrJobId": {"S": done.id},
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": cache_entry,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self._table, "Item": self._record_item(done)}},
                ]
            )
            return done
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error
        # Another worker finished this audio first: use its transcript.
        winner = self.find_cached(record.media_hash, record.model_version)
        if winner is None:
            raise StorageUnavailableError(f"the transcript cache changed while ASR job {asr_job_id} finished; retry")
        self._put(record.superseded_by(winner, at))
        return winner

    def extend(self, asr_job_id: str, expires_at: datetime) -> None:
        record = self.get(asr_job_id).kept_until(expires_at)
        expires = {":expires": {"N": str(int(record.expires_at.timestamp()))}}
        # Two jobs may reuse one transcript at once. Each write moves the expiry only
        # later, so the shorter-lived job's read-modify-write cannot undo the longer one's.
        self._conditional_write(
            "put_item",
            Item=self._record_item(record),
            ConditionExpression="expiresAt < :expires",
            ExpressionAttributeValues=expires,
        )
        if record.status is AsrStatus.DONE:
            # The cache entry's own item carries the TTL that DynamoDB acts on.
            self._conditional_write(
                "update_item",
                Key={"pk": {"S": _cache_pk(record.media_hash, record.model_version)}},
                UpdateExpression="SET expiresAt = :expires, #document = :document",
                ConditionExpression="asrJobId = :id AND expiresAt < :expires",
                ExpressionAttributeNames={"#document": "document"},
                ExpressionAttributeValues={
                    **expires,
                    ":document": {"S": record.model_dump_json()},
                    ":id": {"S": record.id},
                },
            )

    def fail(self, asr_job_id: str, error: JobError, at: datetime) -> None:
        self._put_if_running(self.get(asr_job_id).failed(error, at))

    def list_expired(self, now: datetime, limit: int) -> list[AsrJob]:
        items = scan_expired(self._client, self._table, "asrJob", now, limit)
        return [AsrJob.model_validate_json(current_document(item, self._retention)) for item in items]

    def delete(self, asr_job_id: str) -> None:
        try:
            record = self.get(asr_job_id)
        except AsrJobNotFoundError:
            return
        deletes = [{"Delete": {"TableName": self._table, "Key": {"pk": {"S": _record_pk(record.id)}}}}]
        if record.status is AsrStatus.DONE:
            deletes.append(
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": {"pk": {"S": _cache_pk(record.media_hash, record.model_version)}},
                        # A newer entry for the same key is not this record's to remove.
                        "ConditionExpression": "attribute_not_exists(pk) OR asrJobId = :id",
                        "ExpressionAttributeValues": {":id": {"S": record.id}},
                    }
                }
            )
        try:
            self._client.transact_write_items(TransactItems=deletes)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
