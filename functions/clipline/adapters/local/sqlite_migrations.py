"""The local SQLite file's schema, as numbered migrations; ``PRAGMA user_version`` holds the last one applied.

Every store opens the file through SqliteDatabase, which brings it up to date
first; ``clipline migrate`` does the same on demand. Each migration runs in its
own ``BEGIN IMMEDIATE`` transaction and re-reads ``user_version`` once it holds
the write lock, so two processes opening the same file at once apply it once.
A migration that fails rolls back whole and leaves the version where it was.

To change the schema, append a migration; never edit one that has shipped,
because files already past it will not run it again.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence

from ...domain.job_listing import listing_key_of
from ...domain.record_versions import document_expiry, upgrade_document


@dataclass(frozen=True)
class Migration:
    """One step of the schema. ``apply`` runs inside the step's transaction, with the configured retention."""

    version: int
    summary: str
    apply: Callable[[sqlite3.Connection, timedelta], None]


@dataclass(frozen=True)
class MigrationReport:
    """Where a file's schema ended up, and which migrations this call applied (none if another opener did)."""

    version: int
    applied: tuple[int, ...]


def _statements(*sql: str) -> Callable[[sqlite3.Connection, timedelta], None]:
    # One execute() per statement: executescript() would commit the migration's transaction half-way.
    def apply(db: sqlite3.Connection, retention: timedelta) -> None:
        for statement in sql:
            db.execute(statement)

    return apply


# The schema as the first versioned release creates it. IF NOT EXISTS lets it run
# over a file an unversioned release made (user_version 0, tables already there).
_BASELINE = _statements(
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        status TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        document TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS idempotency_claims (
        owner TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        job_id TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (owner, key)
    )""",
    """CREATE TABLE IF NOT EXISTS asr_jobs (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL,
        media_hash TEXT NOT NULL,
        model_version TEXT NOT NULL,
        status TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        document TEXT NOT NULL
    )""",
    # The transcript cache's guarantee: two workers that finish the same audio at
    # once cannot both store a finished transcript; the second write fails.
    """CREATE UNIQUE INDEX IF NOT EXISTS transcript_cache
        ON asr_jobs (media_hash, model_version) WHERE status = 'done'""",
    "CREATE INDEX IF NOT EXISTS asr_jobs_by_job ON asr_jobs (job_id)",
    """CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at TEXT
    )""",
)


def _backfill_expiry(db: sqlite3.Connection, retention: timedelta) -> None:
    """Give every job and ASR record an expiry, in its column and in its document.

    Releases before retention had no ``expires_at`` column in these tables and
    no ``expires_at`` in the documents. Such a record expires at its creation
    time plus ``retention``, as if retention had existed when it was written.
    """
    for table in ("jobs", "asr_jobs"):
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if "expires_at" not in columns:
            # ALTER cannot add a NOT NULL column without a default. Every row gets a
            # value just below and every writer sets one, so it is never NULL after this.
            db.execute(f"ALTER TABLE {table} ADD COLUMN expires_at TEXT")
        for record_id, document, column in db.execute(f"SELECT id, document, expires_at FROM {table}").fetchall():
            stored = json.loads(document)
            upgraded = upgrade_document(stored, retention)
            if upgraded == stored and column is not None:
                continue
            db.execute(
                f"UPDATE {table} SET expires_at = ?, document = ? WHERE id = ?",
                (
                    column if column is not None else document_expiry(upgraded).isoformat(),
                    json.dumps(upgraded, separators=(",", ":")),
                    record_id,
                ),
            )


def _add_usage_plans(db: sqlite3.Connection, retention: timedelta) -> None:
    """Give API keys a usage plan, and add the tables the throttle and the quota keep their state in.

    A key's plan columns are all NULL (the service's default plan, which every
    key made before this gets) or all set. Buckets are keyed by subject:
    ``key:<id>`` for a key's throttle, ``ip:<address>`` for job creations per
    address. Safe to run again on a file that already has them.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(api_keys)")}
    plan_columns = (("rate_per_second", "REAL"), ("burst", "INTEGER"), ("quota", "INTEGER"), ("quota_period", "TEXT"))
    for column, kind in plan_columns:
        if column not in columns:
            db.execute(f"ALTER TABLE api_keys ADD COLUMN {column} {kind}")
    db.execute(
        """CREATE TABLE IF NOT EXISTS rate_buckets (
            subject TEXT PRIMARY KEY,
            tokens REAL NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS quota_usage (
            key_id TEXT PRIMARY KEY,
            period_start TEXT NOT NULL,
            used INTEGER NOT NULL
        )"""
    )


# moto keeps an execution's history only in the memory of the `clipline serve` that ran it.
_ADD_EXECUTION_HISTORIES = _statements(
    """CREATE TABLE IF NOT EXISTS execution_histories (
        job_id TEXT PRIMARY KEY,
        execution_arn TEXT NOT NULL,
        status TEXT NOT NULL,
        execution TEXT NOT NULL,
        events TEXT NOT NULL,
        archived_at TEXT NOT NULL
    )""",
)


def _index_what_cleanup_reads(db: sqlite3.Connection, retention: timedelta) -> None:
    """Let the cleanup find what has expired by index, instead of reading every record at every sweep.

    The sweeper runs every few minutes over a file that holds every job of the
    retention period. Jobs and ASR records get an index on their expiry, and claims
    one on their job, which a job's removal deletes them by. An execution history
    gets its job's expiry as its own (a job's never changes), so that finding the
    expired ones no longer joins every history, events and all, to its job; one
    whose job is already gone takes the time it was archived, and so is expired at once.
    An index on status serves the start-up search for unfinished jobs.
    """
    db.execute("CREATE INDEX IF NOT EXISTS jobs_by_expiry ON jobs (expires_at)")
    db.execute("CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status)")
    db.execute("CREATE INDEX IF NOT EXISTS asr_jobs_by_expiry ON asr_jobs (expires_at)")
    db.execute("CREATE INDEX IF NOT EXISTS idempotency_claims_by_job ON idempotency_claims (job_id)")
    columns = {row[1] for row in db.execute("PRAGMA table_info(execution_histories)")}
    if "expires_at" not in columns:
        # Every row gets a value just below, and every save sets one.
        db.execute("ALTER TABLE execution_histories ADD COLUMN expires_at TEXT")
    db.execute(
        """UPDATE execution_histories SET expires_at = coalesce(
               (SELECT jobs.expires_at FROM jobs WHERE jobs.id = execution_histories.job_id), archived_at)
           WHERE expires_at IS NULL"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS execution_histories_by_expiry ON execution_histories (expires_at)")


# The webhook outbox: a row per ended job whose message is due, written in the job's own
# transaction, so a service killed before sending finds it at its next start. Secrets are
# one per API key, kept readable: they sign, so they cannot be hashed as the keys are.
_ADD_WEBHOOKS = _statements(
    """CREATE TABLE IF NOT EXISTS webhook_outbox (
        job_id TEXT PRIMARY KEY,
        message_id TEXT NOT NULL,
        due_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS webhook_outbox_by_due ON webhook_outbox (due_at)",
    """CREATE TABLE IF NOT EXISTS webhook_secrets (
        key_id TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
)


def _index_jobs_by_owner(db: sqlite3.Connection, retention: timedelta) -> None:
    """Let an owner's jobs be listed newest first by index, whole or by status.

    Each job gets its listing key (creation time, then id; see
    clipline.domain.job_listing) in a column of its own, from its document.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "listing_key" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN listing_key TEXT")
    for job_id, document in db.execute("SELECT id, document FROM jobs WHERE listing_key IS NULL").fetchall():
        created_at = datetime.fromisoformat(json.loads(document)["created_at"])
        db.execute("UPDATE jobs SET listing_key = ? WHERE id = ?", (listing_key_of(created_at, job_id), job_id))
    db.execute("CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, listing_key)")
    db.execute("CREATE INDEX IF NOT EXISTS jobs_by_owner_and_status ON jobs (owner, status, listing_key)")


# Uploads: a record per signed upload link, found by id when a job names it and by expiry when swept.
_ADD_UPLOADS = _statements(
    """CREATE TABLE IF NOT EXISTS uploads (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        document TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS uploads_by_expiry ON uploads (expires_at)",
)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline: jobs, idempotency claims, ASR records and the transcript cache, API keys", _BASELINE),
    Migration(2, "backfill expires_at on jobs and ASR records written before retention existed", _backfill_expiry),
    Migration(3, "usage plans on API keys; token buckets and quota counters", _add_usage_plans),
    Migration(4, "execution histories, archived by local mode's engine when an execution ends", _ADD_EXECUTION_HISTORIES),
    Migration(5, "indexes for the cleanup sweep; execution histories take their job's expiry", _index_what_cleanup_reads),
    Migration(6, "the webhook outbox and the webhook signing secrets", _ADD_WEBHOOKS),
    Migration(7, "jobs get a listing key, and indexes to list an owner's jobs newest first", _index_jobs_by_owner),
    Migration(8, "uploads: a record per signed upload link", _ADD_UPLOADS),
)
LATEST_VERSION = MIGRATIONS[-1].version


def _user_version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(
    db: sqlite3.Connection, retention: timedelta, migrations: Sequence[Migration] = MIGRATIONS
) -> MigrationReport:
    """Apply the migrations ``db``'s file has not had yet, each in its own transaction.

    ``db`` must be in autocommit mode (``isolation_level=None``): the transactions
    are this function's own. ``retention`` is how long records are kept; migration
    2 uses it to date records that never had an expiry. Re-running is harmless: a
    file already at the latest version is only read.

    Raises:
        sqlite3.Error, InternalError: a migration failed; it was rolled back and
        the file stays at the last version that succeeded.
    """
    version = _user_version(db)
    applied: list[int] = []
    for migration in migrations:
        if migration.version <= version:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another opener may have applied it while this one waited for the write lock.
            version = _user_version(db)
            if migration.version <= version:
                db.execute("ROLLBACK")
                continue
            migration.apply(db, retention)
            # user_version lives in the file header, which the transaction covers.
            db.execute(f"PRAGMA user_version = {int(migration.version)}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        version = migration.version
        applied.append(migration.version)
    return MigrationReport(version=version, applied=tuple(applied))
