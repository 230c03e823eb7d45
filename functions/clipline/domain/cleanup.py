"""Removing what has expired, and what no record points to: local mode's sweeper and `clipline cleanup`.

In AWS, DynamoDB TTL removes expired records and a stream handler removes their
artifacts (``retention.py``), with S3 lifecycle rules as the backstop. Local mode
has none of these, so this use case does all three in one pass. Records go last:
a pass cut short leaves records whose files are already gone, which the next pass
finishes, never files that no record points to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import errors
from .asr_jobs import AsrStatus
from .retention import delete_expired_objects
from .transcription import transcript_cache_prefix
from .uploads import upload_prefix
from .use_cases import Services, artifact_prefix

# Records handled per pass of each kind; a sweep runs again within minutes.
BATCH = 500
JOBS_PREFIX = "jobs/"
TRANSCRIPTS_PREFIX = "transcripts/"


@dataclass
class CleanupReport:
    expired_jobs: list[str] = field(default_factory=list)
    expired_transcripts: list[str] = field(default_factory=list)
    expired_asr_records: list[str] = field(default_factory=list)
    expired_uploads: list[str] = field(default_factory=list)
    orphaned_keys: list[str] = field(default_factory=list)
    removed_files: int = 0


def clean_up(services: Services, dry_run: bool = False) -> CleanupReport:
    """Remove expired jobs, expired ASR records and cache entries, expired uploads, and files no record points to.

    A cache entry lives as long as the longest-lived job that reused it (each reuse
    extends it), so an expired entry has no live user. With ``dry_run`` nothing is
    removed; the report says what would be.
    """
    now = services.clock.now()
    report = CleanupReport()
    for job in services.jobs.list_expired(now, BATCH):
        report.expired_jobs.append(job.id)
        if not dry_run:
            report.removed_files += delete_expired_objects(services, artifact_prefix(job.id), "job")
            services.jobs.delete(job.id)
    for record in services.asr_jobs.list_expired(now, BATCH):
        report.expired_asr_records.append(record.id)
        owns_transcript = record.status is AsrStatus.DONE and record.transcript_key
        if owns_transcript:
            report.expired_transcripts.append(record.transcript_key)
        if not dry_run:
            if owns_transcript:
                # Only the record's own folder, whatever its transcript_key says.
                folder = transcript_cache_prefix(record.media_hash, record.model_version, record.id)
                report.removed_files += delete_expired_objects(services, folder, "transcript")
            services.asr_jobs.delete(record.id)
    if services.uploads is not None:
        for upload in services.uploads.list_expired(now, BATCH):
            report.expired_uploads.append(upload.id)
            if not dry_run:
                report.removed_files += delete_expired_objects(services, upload_prefix(upload.id), "upload")
                services.uploads.delete(upload.id)
    # Files of the expired records are theirs, not orphans (and in a dry run still there).
    expired = set(report.expired_jobs) | set(report.expired_asr_records)
    for key in _orphaned_keys(services, expired):
        report.orphaned_keys.append(key)
        if not dry_run:
            report.removed_files += delete_expired_objects(services, key, "orphan")
    return report


def _orphaned_keys(services: Services, expired: set[str]) -> list[str]:
    """Files whose record is gone: left by a crash between writing and recording, or by a removal cut short.

    Job files belong to their job record, which exists before any file is written.
    A canonical transcript belongs to its ASR record while that record is running
    (it writes, then finishes) or done; failed, reused and superseded records own none.
    """
    orphans = []
    # A sweep sees every job kept, so their records are asked for together, not one read per file.
    job_files = _by_owner(services.artifacts.list_keys(JOBS_PREFIX), 1)
    unrecorded = services.jobs.missing([job_id for job_id in job_files if job_id is not None and job_id not in expired])
    for job_id, keys in job_files.items():
        if job_id is None or job_id in unrecorded:
            orphans.extend(keys)
    for asr_job_id, keys in _by_owner(services.artifacts.list_keys(TRANSCRIPTS_PREFIX), 3).items():
        if asr_job_id is None or (asr_job_id not in expired and not _owns_transcript(services, asr_job_id)):
            orphans.extend(keys)
    return orphans


def _by_owner(keys: list[str], owner_part: int) -> dict[str | None, list[str]]:
    """``keys`` grouped by the record id at ``owner_part`` of their path; None for keys too short to name one.

    Job files are ``jobs/<job id>/<name>``, transcripts ``transcripts/<media hash>/<model>/<ASR record id>/<name>``.
    """
    owners: dict[str | None, list[str]] = {}
    for key in keys:
        parts = key.split("/")
        owner = parts[owner_part] if len(parts) > owner_part + 1 else None
        owners.setdefault(owner, []).append(key)
    return owners


def _owns_transcript(services: Services, asr_job_id: str) -> bool:
    try:
        return services.asr_jobs.get(asr_job_id).status in (AsrStatus.RUNNING, AsrStatus.DONE)
    except errors.AsrJobNotFoundError:
        return False
