"""One SQLite file (WAL) shared by local mode's stores, with the connection rules they all follow."""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Iterator

from ...domain.record_versions import DEFAULT_RETENTION
from .sqlite_migrations import MigrationReport, migrate

# As long as a connection waits for a lock (busy_timeout).
_LOCK_WAIT_SECONDS = 30


class SqliteDatabase:
    """Opens a connection per call, so handler and worker threads never share one.

    Writes run in ``BEGIN IMMEDIATE`` transactions, which take the write lock up
    front and so serialise read-modify-write cycles across threads and processes.

    Opening brings the file's schema up to date (see sqlite_migrations);
    ``retention`` is the service's, which dates records that never had an expiry.
    ``migration_report`` says what opening did.
    """

    def __init__(self, path: Path, retention: timedelta = DEFAULT_RETENTION) -> None:
        """Raises sqlite3.Error or InternalError when a migration fails (the file keeps its last good version)."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.connection() as db:
            _use_wal(db)
            self.migration_report: MigrationReport = migrate(db, retention)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=_LOCK_WAIT_SECONDS, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={_LOCK_WAIT_SECONDS * 1000}")
            yield db
        finally:
            db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        with self.connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


def _use_wal(db: sqlite3.Connection) -> None:
    """Put the file in WAL mode, once, whoever gets there first.

    Switching needs the file to itself, and SQLite refuses at once, without the
    busy wait, while another opener is reading it; so wait here instead.
    """
    deadline = time.monotonic() + _LOCK_WAIT_SECONDS
    while db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
