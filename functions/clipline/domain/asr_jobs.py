"""The ASR record: one transcription attempt for a job, and the transcript cache it feeds.

A finished record (status ``done``) is the cache entry for its (media hash, model
version): the next job whose audio hashes the same reuses its transcript instead
of calling the provider. At most one finished record exists per key; the stores
enforce it (a unique partial index in SQLite, a conditional write in DynamoDB).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .jobs import JobError


class AsrStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    REUSED = "reused"
    SUPERSEDED = "superseded"
    FAILED = "failed"


class AsrJob(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, alias_generator=to_camel)

    id: str
    job_id: str = Field(description="The clip job this transcription is for")
    media_hash: str = Field(description="sha256 of the extracted mono 16 kHz PCM audio")
    provider: str
    model: str
    model_version: str = Field(
        description="The provider's model version, plus the language when one was forced (cache key half)"
    )
    language: str | None = Field(None, description="The language asked for; None means detect")
    status: AsrStatus
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    last_heartbeat_at: datetime | None = None
    transcript_key: str | None = Field(None, description="Storage key of the canonical transcript JSON")
    cache_entry_id: str | None = Field(
        None, description="For reused and superseded records: the finished record whose transcript was used"
    )
    error: JobError | None = None

    def finished(self, transcript_key: str, at: datetime) -> "AsrJob":
        """This record as the cache entry for its key."""
        return self.model_copy(update={"status": AsrStatus.DONE, "transcript_key": transcript_key, "updated_at": at})

    def kept_until(self, expires_at: datetime) -> "AsrJob":
        return self.model_copy(update={"expires_at": max(self.expires_at, expires_at)})

    def failed(self, error: JobError, at: datetime) -> "AsrJob":
        return self.model_copy(update={"status": AsrStatus.FAILED, "error": error, "updated_at": at})

    def superseded_by(self, entry: "AsrJob", at: datetime) -> "AsrJob":
        """This record after ``entry`` finished the same audio first: it points at ``entry``'s transcript."""
        return self.model_copy(
            update={
                "status": AsrStatus.SUPERSEDED,
                "transcript_key": entry.transcript_key,
                "cache_entry_id": entry.id,
                "updated_at": at,
            }
        )


def new_asr_job_id() -> str:
    return uuid.uuid4().hex
