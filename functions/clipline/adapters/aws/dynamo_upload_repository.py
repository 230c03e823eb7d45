"""Upload records in the DynamoDB jobs table: one item each, TTL on ``expiresAt``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...domain.errors import StorageUnavailableError, UploadNotFoundError
from ...domain.uploads import Upload
from .dynamo_job_repository import scan_expired

UPLOAD_ITEM_TYPE = "upload"


def _upload_pk(upload_id: str) -> str:
    return f"UPLOAD#{upload_id}"


class DynamoUploadRepository:
    """UploadRepository beside the jobs, on the same ``pk`` table.

    When TTL removes an item, the table's stream hands it to RemoveExpiredArtifacts,
    which deletes the upload's object as it does a job's files.
    """

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def create(self, upload: Upload) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": _upload_pk(upload.id)},
                    "type": {"S": UPLOAD_ITEM_TYPE},
                    "expiresAt": {"N": str(int(upload.expires_at.timestamp()))},
                    "document": {"S": upload.model_dump_json()},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailableError(f"DynamoDB call failed: {error}") from error

    def get(self, upload_id: str) -> Upload:
        try:
            item = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": _upload_pk(upload_id)}}, ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailableError(f"DynamoDB call failed: {error}") from error
        if item is None:
            raise UploadNotFoundError(f"upload {upload_id} not found")
        return Upload.model_validate_json(item["document"]["S"])

    def delete(self, upload_id: str) -> None:
        try:
            self._client.delete_item(TableName=self._table, Key={"pk": {"S": _upload_pk(upload_id)}})
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailableError(f"DynamoDB call failed: {error}") from error

    def list_expired(self, now: datetime, limit: int) -> list[Upload]:
        items = scan_expired(self._client, self._table, UPLOAD_ITEM_TYPE, now, limit)
        return [Upload.model_validate_json(item["document"]["S"]) for item in items]
