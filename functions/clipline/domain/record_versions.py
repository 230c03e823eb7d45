"""Stored record documents across releases: what each schema version promises, and the one upgrade between them.

Records outlive releases: a job or ASR record written by an earlier release is
still read by this one. Both are kept as JSON documents (field names, not the
camelCase wire names), so a record's shape is its document's shape.

- Version 1: the document as first stored. Records written before retention
  existed have no ``expires_at``.
- Version 2: every document has ``expires_at``.

This is the only place that knows how to go from one to the other. SQLite's
migration 2 rewrites old rows with it; the DynamoDB adapters apply it when they
read an item older than the current version, and the DynamoDB backfill rewrites
such items with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .errors import InternalError

CURRENT_SCHEMA_VERSION = 2

# Settings.retention_days defaults to the same 7 days; a unit test keeps the two together.
DEFAULT_RETENTION = timedelta(days=7)


def document_expiry(document: Mapping[str, Any]) -> datetime | None:
    """When the record ``document`` holds expires, or None for a document from before retention existed."""
    value = document.get("expires_at", document.get("expiresAt"))
    return datetime.fromisoformat(value) if value else None


def upgrade_document(document: Mapping[str, Any], retention: timedelta) -> dict[str, Any]:
    """``document`` (a stored job or ASR record) at the current schema version.

    A document without an expiry gets ``expires_at`` = its creation time plus
    ``retention``: the expiry the record would have had if retention had existed
    when it was written. A current document comes back unchanged (as a copy).

    Raises:
        InternalError: the document has no expiry and no creation time to derive one from.
    """
    upgraded = dict(document)
    if document_expiry(document) is not None:
        return upgraded
    created = document.get("created_at", document.get("createdAt"))
    if not created:
        raise InternalError(
            f"stored record {document.get('id', '?')} has neither an expiry nor a creation time to derive one from"
        )
    upgraded["expires_at"] = (datetime.fromisoformat(created) + retention).isoformat()
    return upgraded
