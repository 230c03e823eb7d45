"""Items in the DynamoDB jobs table across schema versions: reading old ones, and rewriting them in place.

Job, ASR and transcript-cache items carry ``schemaVersion`` and a JSON
``document``. The adapters read an item of any earlier version through
``current_document`` (the upgrade itself is record_versions'), so a table never
has to be backfilled before a release can read it. ``backfill`` then rewrites
the old items, so that DynamoDB's TTL, which only sees the ``expiresAt``
attribute, removes them too. Idempotency claims carry no document and are left alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...domain.errors import StorageUnavailableError
from ...domain.record_versions import CURRENT_SCHEMA_VERSION, document_expiry, upgrade_document

# Items written before items carried a version are version 1.
_FIRST_VERSION = 1
# Attempts to rewrite one item that a writer keeps changing underneath the backfill.
_UPGRADE_ATTEMPTS = 5
_OLD = "attribute_not_exists(schemaVersion) OR schemaVersion < :current"


def schema_version(item: dict[str, Any]) -> int:
    return int(item["schemaVersion"]["N"]) if "schemaVersion" in item else _FIRST_VERSION


def current_document(item: dict[str, Any], retention: timedelta) -> str:
    """The item's JSON document at the current schema version; an older one is upgraded on the fly.

    ``retention`` is the service's: an item from before retention existed expires
    at its creation time plus ``retention``.

    Raises:
        InternalError: an old document has no creation time to date it from.
    """
    raw = item["document"]["S"]
    if schema_version(item) >= CURRENT_SCHEMA_VERSION:
        return raw
    return json.dumps(upgrade_document(json.loads(raw), retention), separators=(",", ":"))


@dataclass(frozen=True)
class BackfillReport:
    scanned: int
    upgraded: int


def backfill(client: Any, table: str, retention: timedelta) -> BackfillReport:
    """Rewrite every item older than the current schema version: its document, ``schemaVersion``, and
    ``expiresAt`` (for TTL) where it has none.

    Pages through the table with Scan. Each rewrite is conditional on the item
    still being old and its document unchanged, so an item a writer changed or
    upgraded meanwhile is never overwritten: it is read again, and rewritten
    only if it is still old. Re-running finds nothing left to do.

    Raises:
        StorageUnavailableError: a DynamoDB call failed; what was rewritten stays rewritten.
        InternalError: an old document has no creation time to date it from.
    """
    scanned = upgraded = 0
    current = {":current": {"N": str(CURRENT_SCHEMA_VERSION)}}
    try:
        pages = client.get_paginator("scan").paginate(
            TableName=table,
            FilterExpression=f"attribute_exists(#document) AND ({_OLD})",
            ExpressionAttributeNames={"#document": "document"},
            ExpressionAttributeValues=current,
            ConsistentRead=True,
        )
        for page in pages:
            scanned += page["ScannedCount"]
            upgraded += sum(_upgrade(client, table, item, retention) for item in page["Items"])
    except (ClientError, BotoCoreError) as error:
        raise StorageUnavailableError(f"DynamoDB call failed: {error}") from error
    return BackfillReport(scanned=scanned, upgraded=upgraded)


def _upgrade(client: Any, table: str, item: dict[str, Any], retention: timedelta) -> bool:
    """Rewrite one old item; False when a writer got there first and left it current (or deleted it)."""
    for _ in range(_UPGRADE_ATTEMPTS):
        document = current_document(item, retention)
        expires_at = document_expiry(json.loads(document))
        try:
            client.update_item(
                TableName=table,
                Key={"pk": item["pk"]},
                # An expiresAt already there is what TTL acts on, and may have been extended: keep it.
                UpdateExpression=(
                    "SET #document = :document, expiresAt = if_not_exists(expiresAt, :expiresAt),"
                    " schemaVersion = :current"
                ),
                # The document check also refuses a deleted item, which update_item would otherwise recreate.
                ConditionExpression=f"#document = :old AND ({_OLD})",
                ExpressionAttributeNames={"#document": "document"},
                ExpressionAttributeValues={
                    ":document": {"S": document},
                    ":expiresAt": {"N": str(int(expires_at.timestamp()))},
                    ":current": {"N": str(CURRENT_SCHEMA_VERSION)},
                    ":old": item["document"],
                },
            )
            return True
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        fresh = client.get_item(TableName=table, Key={"pk": item["pk"]}, ConsistentRead=True).get("Item")
        if fresh is None or "document" not in fresh or schema_version(fresh) >= CURRENT_SCHEMA_VERSION:
            return False
        item = fresh
    raise StorageUnavailableError(f"item {item['pk']['S']} kept changing underneath the backfill; run it again")
