"""An upload: a source a user sends straight to storage, through a signed link, to clip from later.

The link carries the declared content type and size, and storage refuses a PUT
that differs (S3 by the signed headers; local mode's gateway by checking them);
creating a job from the upload checks the stored object once more, so an object
that differs anyway is removed rather than clipped. The record expires on its own
retention, and its object with it.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

from pydantic import Field

from .models import DomainModel

UPLOADS_PREFIX = "uploads/"
# A user's file name becomes the last part of a storage key: plain characters only, the extension kept.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME_CHARS = 100
_SOURCE_KEY = re.compile(rf"{UPLOADS_PREFIX}(?P<id>[0-9a-f]{{32}})/[A-Za-z0-9._-]{{1,{_MAX_NAME_CHARS}}}")


class Upload(DomainModel):
    id: str
    owner: str = Field(description="The API key id that asked for the upload link")
    file_name: str
    content_type: str
    size_bytes: int
    source_key: str
    created_at: datetime
    link_expires_at: datetime
    expires_at: datetime

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def new_upload(
    owner: str,
    file_name: str,
    content_type: str,
    size_bytes: int,
    now: datetime,
    link_ttl: timedelta,
    retention: timedelta,
) -> Upload:
    upload_id = uuid.uuid4().hex
    return Upload(
        id=upload_id,
        owner=owner,
        file_name=file_name,
        content_type=content_type,
        size_bytes=size_bytes,
        source_key=f"{upload_prefix(upload_id)}{storage_name(file_name)}",
        created_at=now,
        link_expires_at=now + link_ttl,
        expires_at=now + retention,
    )


def upload_prefix(upload_id: str) -> str:
    return f"{UPLOADS_PREFIX}{upload_id}/"


def storage_name(file_name: str) -> str:
    """``file_name`` as the last part of a key: its base name, unsafe characters replaced, at most 100 characters."""
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    safe = _UNSAFE.sub("_", base).strip("._") or "upload"
    stem, dot, extension = safe.rpartition(".")
    if dot and len(extension) <= 10 and stem:
        return f"{stem[: _MAX_NAME_CHARS - len(extension) - 1]}.{extension}"
    return safe[:_MAX_NAME_CHARS]


def upload_id_of(source_key: str) -> str | None:
    """The upload id a source key names, or None when it is not an upload's key."""
    match = _SOURCE_KEY.fullmatch(source_key)
    return match.group("id") if match else None
