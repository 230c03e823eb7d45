"""Retention: when a stored record goes, the files only it kept alive go with it.

Two kinds of files belong to records:

- a job's artifacts, under ``jobs/<job id>/``, which belong to the job record;
- a canonical transcript, under ``transcript_cache_prefix(...)``, which belongs to the
  transcript cache: the ``done`` ASR record and its cache entry point at it, and every
  later job on the same audio reuses it (and keeps its own copies under its own folder).

Removal runs after the record is already gone, and may run more than once for the same
record (a stream retries a batch from the first failed record, and may deliver twice).
So every rule deletes a whole folder, which is idempotent, and first asks the store
again: a folder is deleted only when no live record still refers to it. That check also
keeps the files of a record that was deleted and written again (as a migration may do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from . import errors
from .asr_jobs import AsrStatus
from .transcription import transcript_cache_prefix
from .uploads import upload_prefix
from .use_cases import Services, artifact_prefix

# The ``type`` each store gives its records.
JOB_RECORD = "job"
ASR_JOB_RECORD = "asrJob"
TRANSCRIPT_CACHE_RECORD = "transcriptCache"
IDEMPOTENCY_CLAIM_RECORD = "idempotencyClaim"
UPLOAD_RECORD = "upload"

TRANSCRIPT_FILE = "transcript.json"
_JOB_KEY_PREFIX = "JOB#"
# Job and ASR ids are uuid hex; anything else must never widen the prefix that gets deleted.
_ID_PATTERN = r"^[A-Za-z0-9_-]+$"


class _Reference(BaseModel):
    # Only the fields retention needs: a record written by an older schema version still expires cleanly.
    model_config = ConfigDict(frozen=True, populate_by_name=True, alias_generator=to_camel, extra="ignore")


class _IdReference(_Reference):
    id: str = Field(pattern=_ID_PATTERN)


class _TranscriptReference(_Reference):
    id: str = Field(pattern=_ID_PATTERN)
    media_hash: str
    model_version: str
    status: str
    transcript_key: str | None = None


def remove_artifacts_of_expired_record(
    services: Services, record_type: str | None, document: Mapping[str, Any] | None, pk: str | None = None
) -> int:
    """Delete the files that belonged only to a record the store has removed; returns how many objects.

    ``record_type`` is the record's ``type``, ``document`` its parsed JSON document (None when
    the record had none) and ``pk`` the store's key for it, which names the job when a job
    record comes without its document.

    - a job: its artifact folder, unless the job still reads back unexpired;
    - an upload: its object;
    - a ``done`` ASR record or a transcript cache entry: the canonical transcript folder,
      unless the live cache entry for the same audio and model still points at that transcript;
    - anything else (reused, superseded, failed or running ASR records, idempotency claims,
      record types this version does not know) owns no files: nothing is deleted.

    Safe to repeat: a second call finds nothing left to delete and returns 0.

    Raises:
        InternalError: the record names files outside the layout this version writes
            (a job id that is not an id, a transcript key that is not its record's), so
            nothing was deleted.
        pydantic.ValidationError: the document lacks the fields its type always has.
        StorageUnavailableError: the record store or the artifact store could not be reached.
    """
    if record_type == JOB_RECORD:
        return _remove_job_artifacts(services, _job_id(document, pk))
    if record_type == UPLOAD_RECORD and document is not None:
        # Its own folder only, whatever else the document says.
        return delete_expired_objects(services, upload_prefix(_IdReference.model_validate(document).id), "upload")
    if record_type in (ASR_JOB_RECORD, TRANSCRIPT_CACHE_RECORD) and document is not None:
        reference = _TranscriptReference.model_validate(document)
        # Only the finished record is the cache entry; the others point at its transcript or own none.
        if reference.status == AsrStatus.DONE.value and reference.transcript_key is not None:
            return _remove_unreferenced_transcript(services, reference)
    return 0


def _job_id(document: Mapping[str, Any] | None, pk: str | None) -> str:
    if document is not None:
        return _IdReference.model_validate(document).id
    if pk is not None and pk.startswith(_JOB_KEY_PREFIX):
        return _IdReference(id=pk.removeprefix(_JOB_KEY_PREFIX)).id
    raise errors.InternalError(f"a removed job record has neither a document nor a job key ({pk!r})")


def _remove_job_artifacts(services: Services, job_id: str) -> int:
    try:
        job = services.jobs.get(job_id)
    except errors.JobNotFoundError:
        job = None
    if job is not None and job.expires_at > services.clock.now():
        return 0
    return delete_expired_objects(services, artifact_prefix(job_id), "job")


def _remove_unreferenced_transcript(services: Services, reference: _TranscriptReference) -> int:
    folder = transcript_cache_prefix(reference.media_hash, reference.model_version, reference.id)
    if reference.transcript_key != f"{folder}{TRANSCRIPT_FILE}":
        # Only the record's own folder is ever deleted; a key elsewhere may be shared or unknown.
        raise errors.InternalError(
            f"ASR record {reference.id} points at {reference.transcript_key!r}, not at its own folder {folder!r}"
        )
    if services.asr_jobs is None:
        raise errors.InternalError("transcript retention needs the ASR record store")
    entry = services.asr_jobs.find_cached(reference.media_hash, reference.model_version)
    if (
        entry is not None
        and entry.transcript_key == reference.transcript_key
        and entry.expires_at > services.clock.now()
    ):
        return 0
    return delete_expired_objects(services, folder, "transcript")


def delete_expired_objects(services: Services, prefix: str, kind: str) -> int:
    """Delete every stored object under ``prefix`` and count them as expired ``kind`` (job, transcript, upload, orphan)."""
    deleted = services.artifacts.delete_prefix(prefix)
    services.telemetry.count("ExpiredObjectsDeleted", deleted, kind=kind)
    return deleted
