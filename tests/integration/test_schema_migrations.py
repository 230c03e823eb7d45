"""Records outlive releases: old SQLite files and old DynamoDB items are read, and upgraded in place, by this one."""

import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from clipline import cli
from clipline.adapters.aws.dynamo_asr_job_repository import DynamoAsrJobRepository
from clipline.adapters.aws.dynamo_job_repository import DynamoJobRepository
from clipline.adapters.aws.dynamo_migrations import backfill
from clipline.adapters.local.sqlite_api_key_store import SqliteApiKeyStore
from clipline.adapters.local.sqlite_asr_job_repository import SqliteAsrJobRepository
from clipline.adapters.local.sqlite_database import SqliteDatabase
from clipline.adapters.local.sqlite_execution_archive import SqliteExecutionArchive
from clipline.adapters.local.sqlite_job_repository import SqliteJobRepository
from clipline.adapters.local.sqlite_migrations import LATEST_VERSION, MIGRATIONS, Migration, migrate
from clipline.domain.jobs import ClipRequest, JobChange, JobStatus, new_job
from clipline.domain.ports import IdempotencyClaim
from clipline.domain.record_versions import CURRENT_SCHEMA_VERSION
from tests.fakes import FixedClock, an_asr_record, create_moto_jobs_table

CREATED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
# Not the 7-day default, so the tests see the configured retention reach the upgrade.
RETENTION = timedelta(days=3)


def old_job_document(job_id="0" * 32):
    """A job as a release from before retention stored it: no expires_at."""
    return {
        "id": job_id,
        "status": "succeeded",
        "stage": "done",
        "progress": 100,
        "request": {"source_url": "https://example.com/a.mp4", "start_seconds": 60.0, "end_seconds": 70.0},
        "created_at": "2025-06-01T12:00:00Z",
        "updated_at": "2025-06-01T12:00:09Z",
        "owner": "key-1",
        "correlation_id": "cid",
        "artifacts": {"clip": f"jobs/{job_id}/clip.mp4"},
        "events": [],
    }


def old_asr_document(record_id="a" * 32):
    return {
        "id": record_id,
        "job_id": "0" * 32,
        "media_hash": "f" * 64,
        "provider": "fake",
        "model": "fake",
        "model_version": "fake-1",
        "status": "done",
        "created_at": "2025-06-01T12:00:02Z",
        "updated_at": "2025-06-01T12:00:05Z",
        "transcript_key": "transcripts/x/transcript.json",
    }


def make_old_release_database(path):
    """The file a release from before retention left behind: no expires_at anywhere, user_version 0."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE jobs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL, document TEXT NOT NULL);
        CREATE TABLE idempotency_claims (
            owner TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, job_id TEXT NOT NULL,
            expires_at TEXT NOT NULL, PRIMARY KEY (owner, key)
        );
        CREATE TABLE asr_jobs (
            id TEXT PRIMARY KEY, job_id TEXT NOT NULL, media_hash TEXT NOT NULL, model_version TEXT NOT NULL,
            status TEXT NOT NULL, document TEXT NOT NULL
        );
        """
    )
    job, record = old_job_document(), old_asr_document()
    db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?)", (job["id"], job["owner"], job["status"], json.dumps(job)))
    db.execute(
        "INSERT INTO asr_jobs VALUES (?, ?, ?, ?, ?, ?)",
        (record["id"], record["job_id"], record["media_hash"], record["model_version"], "done", json.dumps(record)),
    )
    db.commit()
    db.close()
    return job["id"], record["id"]


def a_job(retention=RETENTION):
    """A job this release makes, created at CREATED."""
    request = ClipRequest(source_url="https://example.com/a.mp4", start_seconds=1, end_seconds=5)
    return new_job(request, owner="key-1", correlation_id="cid", now=CREATED, retention=retention)


def user_version(path):
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def contents(path):
    """Everything in the file, schema and rows, as SQL text: equal contents, equal text."""
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


# SQLite


def test_migrations_are_numbered_one_after_another():
    assert [migration.version for migration in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert LATEST_VERSION == 8


def test_new_database_starts_at_the_latest_version(tmp_path):
    # When a store opens a file that does not exist yet
    database = SqliteDatabase(tmp_path / "new.sqlite3")
    # Then every migration ran, in order
    assert database.migration_report.applied == (1, 2, 3, 4, 5, 6, 7, 8)
    assert user_version(tmp_path / "new.sqlite3") == LATEST_VERSION


def test_old_release_database_is_upgraded_and_its_jobs_expire(tmp_path):
    # Given the file a release from before retention left behind
    path = tmp_path / "clipline.sqlite3"
    job_id, record_id = make_old_release_database(path)
    # When this release's stores open it at start-up
    jobs = SqliteJobRepository(path, FixedClock().now, retention=RETENTION)
    asr_jobs = SqliteAsrJobRepository(path, retention=RETENTION)
    # Then the job reads back and expires at its creation time plus the retention
    job = jobs.get(job_id)
    assert job.created_at == CREATED and job.expires_at == CREATED + RETENTION
    assert not job.is_expired(CREATED + RETENTION - timedelta(seconds=1))
    assert job.is_expired(CREATED + RETENTION + timedelta(seconds=1))
    # And so does its ASR record
    assert asr_jobs.get(record_id).expires_at == datetime(2025, 6, 1, 12, 0, 2, tzinfo=UTC) + RETENTION
    # And the expiry is stored in the column the cleanup queries and in the document itself
    with sqlite3.connect(path) as db:
        column, document = db.execute("SELECT expires_at, document FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert datetime.fromisoformat(column) == datetime.fromisoformat(json.loads(document)["expires_at"]) == job.expires_at
    assert user_version(path) == LATEST_VERSION


def test_rerunning_the_migrations_changes_nothing(tmp_path):
    # Given an old file already upgraded
    path = tmp_path / "clipline.sqlite3"
    make_old_release_database(path)
    SqliteDatabase(path, RETENTION)
    upgraded = contents(path)
    # When it is opened again, even with another retention
    again = SqliteDatabase(path, timedelta(days=30))
    # Then nothing runs and nothing changes
    assert again.migration_report.applied == ()
    assert contents(path) == upgraded
    # And even running every migration once more (as if the version had been lost) changes no record
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA user_version = 0")
        assert migrate(db, timedelta(days=30)).applied == (1, 2, 3, 4, 5, 6, 7, 8)
    assert contents(path) == upgraded


def test_database_made_by_todays_code_opens_fine(tmp_path):
    # Given a file the release before versioning made: today's tables, a job, a key, user_version 0
    path = tmp_path / "clipline.sqlite3"
    clock = FixedClock(CREATED)
    job = a_job(timedelta(days=7))
    hashing_key, api_key = b"k" * 32, "cl_the-key"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE jobs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL,
                           expires_at TEXT NOT NULL, document TEXT NOT NULL);
        CREATE TABLE idempotency_claims (owner TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL,
                                         job_id TEXT NOT NULL, expires_at TEXT NOT NULL, PRIMARY KEY (owner, key));
        CREATE TABLE asr_jobs (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, media_hash TEXT NOT NULL,
                               model_version TEXT NOT NULL, status TEXT NOT NULL, expires_at TEXT NOT NULL,
                               document TEXT NOT NULL);
        CREATE UNIQUE INDEX transcript_cache ON asr_jobs (media_hash, model_version) WHERE status = 'done';
        CREATE INDEX asr_jobs_by_job ON asr_jobs (job_id);
        CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
                               created_at TEXT NOT NULL, last_used_at TEXT, revoked_at TEXT);
        PRAGMA journal_mode=WAL;
        """
    )
    db.execute(
        "INSERT INTO jobs VALUES (?, ?, ?, ?, ?)",
        (job.id, job.owner, job.status.value, job.expires_at.isoformat(), job.model_dump_json()),
    )
    key_hash = hmac.new(hashing_key, api_key.encode(), hashlib.sha256).hexdigest()
    db.execute("INSERT INTO api_keys (id, name, key_hash, created_at) VALUES ('k1', 'dev', ?, ?)", (key_hash, "2025"))
    db.commit()
    db.close()
    # When this release opens it, with a retention other than the one the job was made with
    keys = SqliteApiKeyStore(path, hashing_key, clock.now, retention=RETENTION)
    jobs = SqliteJobRepository(path, clock.now, retention=RETENTION)
    # Then it is recognised and versioned, and its records are as they were
    assert user_version(path) == LATEST_VERSION
    assert jobs.get(job.id) == job
    assert keys.authenticate(api_key).id == "k1"
    # And its key, made before usage plans, is on the service's default plan
    assert keys.authenticate(api_key).plan is None
    # And the stores go on working on it
    assert jobs.update(job.id, JobChange(status=JobStatus.RUNNING)).status is JobStatus.RUNNING


def test_a_file_from_before_execution_histories_gains_their_archive(tmp_path):
    # Given a file the release before archived histories left: at version 3, with a job in it
    path = tmp_path / "clipline.sqlite3"
    job = a_job()
    with sqlite3.connect(path, isolation_level=None) as db:
        assert migrate(db, RETENTION, MIGRATIONS[:3]).version == 3
        db.execute(
            "INSERT INTO jobs VALUES (?, ?, ?, ?, ?)",
            (job.id, job.owner, job.status.value, job.expires_at.isoformat(), job.model_dump_json()),
        )
    # When this release opens it
    report = SqliteDatabase(path, RETENTION).migration_report
    # Then only the migrations after it ran, and the job is as it was
    assert report.applied == (4, 5, 6, 7, 8) and user_version(path) == LATEST_VERSION
    assert SqliteJobRepository(path, FixedClock().now, retention=RETENTION).get(job.id) == job
    # And an ended execution's history can be archived and read back, its timestamps as ISO-8601 text
    archive = SqliteExecutionArchive(path, FixedClock().now, retention=RETENTION)
    described = {"executionArn": f"arn:aws:states:us-east-1:1:execution:p:{job.id}", "status": "SUCCEEDED",
                 "startDate": CREATED}  # fmt: skip
    archive.save(job.id, described, [{"id": 1, "type": "ExecutionStarted", "timestamp": CREATED}])
    found = archive.find(job.id)
    assert (found.status, found.execution_arn) == ("SUCCEEDED", described["executionArn"])
    assert found.execution["startDate"] == CREATED.isoformat()
    assert found.events == [{"id": 1, "type": "ExecutionStarted", "timestamp": CREATED.isoformat()}]
    # And the history lives as long as its job
    assert archive.list_expired(job.expires_at - timedelta(seconds=1), 10) == []
    assert archive.list_expired(job.expires_at, 10) == [job.id]


def test_a_file_from_before_the_cleanup_indexes_dates_its_histories_by_their_jobs(tmp_path):
    # Given a file at version 4 with a job and its history, and a history whose job is gone
    path = tmp_path / "clipline.sqlite3"
    job = a_job()
    archived_at = CREATED + timedelta(minutes=1)
    with sqlite3.connect(path, isolation_level=None) as db:
        assert migrate(db, RETENTION, MIGRATIONS[:4]).version == 4
        db.execute(
            "INSERT INTO jobs VALUES (?, ?, ?, ?, ?)",
            (job.id, job.owner, job.status.value, job.expires_at.isoformat(), job.model_dump_json()),
        )
        for job_id in (job.id, "gone"):
            db.execute(
                "INSERT INTO execution_histories VALUES (?, ?, 'SUCCEEDED', '{}', '[]', ?)",
                (job_id, f"arn:aws:states:us-east-1:1:execution:p:{job_id}", archived_at.isoformat()),
            )
    # When this release opens it
    assert SqliteDatabase(path, RETENTION).migration_report.applied == (5, 6, 7, 8)
    archive = SqliteExecutionArchive(path, FixedClock().now, retention=RETENTION)
    # Then the history whose job is gone is expired from when it was archived, as before
    assert archive.list_expired(archived_at - timedelta(seconds=1), 10) == []
    assert archive.list_expired(archived_at, 10) == ["gone"]
    # And the other lives as long as its job
    assert archive.list_expired(job.expires_at - timedelta(seconds=1), 10) == ["gone"]
    assert archive.list_expired(job.expires_at, 10) == ["gone", job.id]
    assert archive.find(job.id).status == "SUCCEEDED"


def traced_statements(monkeypatch, *stores):
    """Every SQL statement these stores run from now on, with its parameters filled in.

    Traced on each store's own database, not on SqliteDatabase: a thread an earlier test
    left in this process (a sweeper, a service) would put its statements in the list too.
    """
    statements = []

    def tracing(open_connection):
        @contextmanager
        def traced():
            with open_connection() as db:
                db.set_trace_callback(statements.append)
                yield db

        return traced

    for store in stores:
        # write() opens its connection through connection(), so it is traced as well.
        monkeypatch.setattr(store._database, "connection", tracing(store._database.connection))
    return statements


def test_the_sweepers_statements_find_their_rows_by_index(tmp_path, monkeypatch):
    # Given a file with a job, its idempotency claim, its ASR record and its execution history
    path = tmp_path / "clipline.sqlite3"
    clock = FixedClock(CREATED)
    jobs = SqliteJobRepository(path, clock.now, retention=RETENTION)
    asr_jobs = SqliteAsrJobRepository(path, retention=RETENTION)
    archive = SqliteExecutionArchive(path, clock.now, retention=RETENTION)
    job = a_job()
    jobs.create(job, IdempotencyClaim("key-1", "k", "hash", CREATED + timedelta(days=1)))
    asr_jobs.create(an_asr_record(CREATED, job_id=job.id))
    archive.save(job.id, {"executionArn": "arn", "status": "SUCCEEDED"}, [])
    statements = traced_statements(monkeypatch, jobs, asr_jobs, archive)
    # When the sweeper asks which jobs its files belong to exist, finds and removes what has expired,
    # and a start-up looks for unfinished jobs
    later = CREATED + timedelta(days=30)
    assert jobs.missing([job.id, "gone"]) == {"gone"}
    for expired_job in jobs.list_expired(later, 10):
        jobs.delete(expired_job.id)
    for record in asr_jobs.list_expired(later, 10):
        asr_jobs.delete(record.id)
    assert archive.remove_expired(later, 10) == [job.id]
    jobs.list_unfinished(10)
    # Then everything expired is gone
    with sqlite3.connect(path) as db:
        for table in ("jobs", "idempotency_claims", "webhook_outbox", "asr_jobs", "execution_histories"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
        # And no statement read a whole table to get there
        plans = {
            statement: [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}")]
            for statement in statements
            if statement.startswith(("SELECT", "DELETE", "UPDATE"))
        }
    assert len(plans) == 10
    assert {statement: plan for statement, plan in plans.items() if any(step.startswith("SCAN") for step in plan)} == {}


def test_a_file_from_before_listing_gains_listing_keys_and_lists_its_jobs_by_index(tmp_path, monkeypatch):
    # Given a file at version 6 with two jobs of one owner, made a second apart, one with no microseconds
    path = tmp_path / "clipline.sqlite3"
    older = a_job().model_copy(update={"id": "a" * 32, "created_at": CREATED.replace(microsecond=0)})
    newer = a_job().model_copy(update={"id": "b" * 32, "created_at": CREATED.replace(microsecond=0) + timedelta(seconds=1)})
    with sqlite3.connect(path, isolation_level=None) as db:
        assert migrate(db, RETENTION, MIGRATIONS[:6]).version == 6
        for job in (older, newer):
            db.execute(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?)",
                (job.id, job.owner, job.status.value, job.expires_at.isoformat(), job.model_dump_json()),
            )
    # When this release opens it
    assert SqliteDatabase(path, RETENTION).migration_report.applied == (7, 8)
    jobs = SqliteJobRepository(path, FixedClock().now, retention=RETENTION)
    statements = traced_statements(monkeypatch, jobs)
    # Then the owner's jobs list newest first, whole and by status, each read by index
    assert jobs.list_owned(older.owner, status=None, limit=10, after=None).jobs == (newer, older)
    page = jobs.list_owned(older.owner, status=JobStatus.QUEUED, limit=1, after=None)
    assert page.jobs == (newer,)
    assert jobs.list_owned(older.owner, status=JobStatus.QUEUED, limit=1, after=page.next_after).jobs == (older,)
    with sqlite3.connect(path) as db:
        plans = [[row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}")] for statement in statements]
    assert len(plans) == 3
    assert [plan for plan in plans if any(step.startswith("SCAN jobs") and "INDEX" not in step for step in plan)] == []
    assert [step for plan in plans for step in plan if "TEMP B-TREE" in step] == []


def open_all_at_once(path, openers):
    """What each of ``openers`` stores, started at the same moment on ``path``, reported; and any failures."""
    start = threading.Barrier(openers)
    reports, failures = [], []

    def open_database():
        try:
            start.wait()
            reports.append(SqliteDatabase(path, RETENTION).migration_report)
        except Exception as error:  # noqa: BLE001 - reported to the test
            failures.append(error)

    threads = [threading.Thread(target=open_database) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return reports, failures


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_openers_apply_each_migration_once(tmp_path, round_):
    # Given an old file
    path = tmp_path / "clipline.sqlite3"
    job_id, _ = make_old_release_database(path)
    # When eight stores open it at the same moment
    reports, failures = open_all_at_once(path, 8)
    # Then every opener succeeded, and each migration was applied by exactly one of them
    assert failures == []
    assert sorted(version for report in reports for version in report.applied) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert {report.version for report in reports} == {LATEST_VERSION}
    # And the job was dated once, correctly
    assert SqliteJobRepository(path, FixedClock().now).get(job_id).expires_at == CREATED + RETENTION


def test_a_failing_migration_leaves_the_file_at_the_last_good_version(tmp_path):
    path = tmp_path / "clipline.sqlite3"
    SqliteDatabase(path)

    def half_done(db, retention):
        db.execute("CREATE TABLE half_done (id TEXT)")
        raise RuntimeError("the next migration failed")

    with sqlite3.connect(path, isolation_level=None) as db:
        with pytest.raises(RuntimeError):
            migrate(db, RETENTION, (*MIGRATIONS, Migration(LATEST_VERSION + 1, "fails half-way", half_done)))
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    assert user_version(path) == LATEST_VERSION


def test_cli_migrate_upgrades_a_data_dir(tmp_path):
    # Given a data dir an old release left behind
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    job_id, _ = make_old_release_database(data_dir / "clipline.sqlite3")

    def clipline_migrate():
        result = subprocess.run(
            [sys.executable, "-m", "clipline.cli", "migrate", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "CLIPLINE_RETENTION_DAYS": "2"},
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    # When a user migrates it, then again
    first, second = clipline_migrate(), clipline_migrate()
    # Then the first run says what it applied and the second that there was nothing to do
    assert first.strip() == "database at version 8 (applied 1, 2, 3, 4, 5, 6, 7, 8)"
    assert second.strip() == "database at version 8 (already up to date)"
    # And the job expires after the configured retention
    expiry = SqliteJobRepository(data_dir / "clipline.sqlite3", FixedClock().now).get(job_id).expires_at
    assert expiry == CREATED + timedelta(days=2)


# DynamoDB


@pytest.fixture
def dynamodb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_moto_jobs_table(client)
        yield client


def put_old_item(client, pk, item_type, document, **attributes):
    """An item as a release from before retention wrote it: schemaVersion 1, no expiresAt, none in the document."""
    client.put_item(
        TableName="jobs",
        Item={
            "pk": {"S": pk},
            "type": {"S": item_type},
            "schemaVersion": {"N": "1"},
            "document": {"S": json.dumps(document)},
            **attributes,
        },
    )


def put_old_job(client, document=None):
    document = document or old_job_document()
    put_old_item(
        client, f"JOB#{document['id']}", "job", document,
        owner={"S": "key-1"}, status={"S": document["status"]}, version={"N": "1"},
    )  # fmt: skip
    return document["id"]


def item(client, pk):
    return client.get_item(TableName="jobs", Key={"pk": {"S": pk}}, ConsistentRead=True)["Item"]


def test_old_dynamo_item_reads_with_an_expiry(dynamodb):
    # Given a job item from before retention, and the ASR record for it
    job_id = put_old_job(dynamodb)
    record = old_asr_document()
    put_old_item(dynamodb, f"ASR#{record['id']}", "asrJob", record, jobId={"S": record["job_id"]})
    # When this release reads them
    job = DynamoJobRepository(dynamodb, "jobs", FixedClock().now, retention=RETENTION).get(job_id)
    asr_job = DynamoAsrJobRepository(dynamodb, "jobs", retention=RETENTION).get(record["id"])
    # Then they expire at their creation time plus the retention
    assert job.expires_at == CREATED + RETENTION
    assert job.is_expired(CREATED + RETENTION + timedelta(seconds=1))
    assert asr_job.expires_at == asr_job.created_at + RETENTION


def test_writing_an_old_item_stores_it_at_the_current_version(dynamodb):
    # Given an old running job
    job_id = put_old_job(dynamodb, {**old_job_document(), "status": "running", "stage": "clip"})
    # When this release updates it
    DynamoJobRepository(dynamodb, "jobs", FixedClock().now, retention=RETENTION).update(job_id, JobChange(progress=50))
    # Then it is stored at the current version, with the expiry it was read with, where TTL sees it
    stored = item(dynamodb, f"JOB#{job_id}")
    assert stored["schemaVersion"] == {"N": str(CURRENT_SCHEMA_VERSION)}
    assert stored["expiresAt"] == {"N": str(int((CREATED + RETENTION).timestamp()))}


def test_backfill_upgrades_old_items_and_is_idempotent(dynamodb):
    # Given an old job, an old ASR record, an idempotency claim and a job this release wrote
    old_job_id = put_old_job(dynamodb)
    record = old_asr_document()
    put_old_item(dynamodb, f"ASR#{record['id']}", "asrJob", record, jobId={"S": record["job_id"]})
    claim = {"pk": {"S": "IDEMPOTENCY#key-1#k"}, "type": {"S": "idempotencyClaim"}, "expiresAt": {"N": "1"}}
    dynamodb.put_item(TableName="jobs", Item=claim)
    current = a_job(timedelta(days=1))
    DynamoJobRepository(dynamodb, "jobs", FixedClock().now).create(current)
    current_item = item(dynamodb, f"JOB#{current.id}")
    # When the backfill runs
    report = backfill(dynamodb, "jobs", RETENTION)
    # Then the two old items are at the current version, with the expiry TTL acts on and in their documents
    assert report.upgraded == 2 and report.scanned == 4
    for pk, created in ((f"JOB#{old_job_id}", CREATED), (f"ASR#{record['id']}", CREATED + timedelta(seconds=2))):
        upgraded = item(dynamodb, pk)
        assert upgraded["schemaVersion"] == {"N": "2"}
        assert upgraded["expiresAt"] == {"N": str(int((created + RETENTION).timestamp()))}
        assert datetime.fromisoformat(json.loads(upgraded["document"]["S"])["expires_at"]) == created + RETENTION
    # And the others are untouched
    assert item(dynamodb, f"JOB#{current.id}") == current_item
    assert item(dynamodb, "IDEMPOTENCY#key-1#k") == claim
    # And running it again finds nothing to do and changes nothing
    before = dynamodb.scan(TableName="jobs")["Items"]
    assert backfill(dynamodb, "jobs", timedelta(days=30)).upgraded == 0
    assert sorted(map(str, dynamodb.scan(TableName="jobs")["Items"])) == sorted(map(str, before))


class _WriterRacesTheBackfill:
    """The DynamoDB client, except that ``race`` runs just before the backfill's first conditional write lands."""

    def __init__(self, client, race):
        self._client = client
        self._race = race

    def __getattr__(self, name):
        return getattr(self._client, name)

    def update_item(self, **arguments):
        race, self._race = self._race, None
        if race:
            race()
        return self._client.update_item(**arguments)


def test_backfill_never_overwrites_a_newer_item_written_meanwhile(dynamodb):
    # Given an old running job, which this release updates while the backfill is reading it
    job_id = put_old_job(dynamodb, {**old_job_document(), "status": "running", "stage": "clip"})
    repository = DynamoJobRepository(dynamodb, "jobs", FixedClock().now, retention=RETENTION)
    racing = _WriterRacesTheBackfill(dynamodb, lambda: repository.update(job_id, JobChange(progress=77)))
    # When the backfill runs
    report = backfill(racing, "jobs", RETENTION)
    # Then the writer's item stands: it was already current, so the backfill left it alone
    assert report.upgraded == 0
    assert repository.get(job_id).progress == 77
    assert item(dynamodb, f"JOB#{job_id}")["version"] == {"N": "2"}


def test_backfill_keeps_the_change_of_an_old_writer_it_raced(dynamodb):
    # Given an old job that a previous release's function rewrites (still version 1) while the backfill reads it
    document = {**old_job_document(), "status": "running", "stage": "clip"}
    job_id = put_old_job(dynamodb, document)
    racing = _WriterRacesTheBackfill(dynamodb, lambda: put_old_job(dynamodb, {**document, "progress": 42}))
    # When the backfill runs
    report = backfill(racing, "jobs", RETENTION)
    # Then it upgraded the item as that writer left it
    assert report.upgraded == 1
    job = DynamoJobRepository(dynamodb, "jobs", FixedClock().now).get(job_id)
    assert (job.progress, job.expires_at) == (42, CREATED + RETENTION)
    assert item(dynamodb, f"JOB#{job_id}")["schemaVersion"] == {"N": "2"}


def test_cli_migrate_aws_backfills_the_jobs_table(dynamodb, monkeypatch, capsys):
    # Given an old job in the table the settings name
    job_id = put_old_job(dynamodb)
    monkeypatch.setenv("CLIPLINE_JOBS_TABLE", "jobs")
    monkeypatch.setenv("CLIPLINE_AWS_REGION", "us-east-1")
    monkeypatch.setenv("CLIPLINE_RETENTION_DAYS", "3")
    # When a user runs `clipline migrate --aws` twice
    assert cli.main(["migrate", "--aws"]) == 0
    assert cli.main(["migrate", "--aws"]) == 0
    # Then the first run upgraded it and the second found nothing to do
    first, second = capsys.readouterr().out.splitlines()
    assert first == "table jobs: upgraded 1 item(s) to schema version 2 (1 scanned)"
    assert second == "table jobs: upgraded 0 item(s) to schema version 2 (1 scanned)"
    assert item(dynamodb, f"JOB#{job_id}")["expiresAt"] == {"N": str(int((CREATED + RETENTION).timestamp()))}
