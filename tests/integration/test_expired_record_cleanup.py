"""The stream handler that deletes files when DynamoDB removes jobs-table records, on moto S3 and DynamoDB.

Records are written with the real repositories; each stream record's OldImage is the
raw item read back before it is deleted, as DynamoDB puts it in the stream.
"""

import itertools
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws

from clipline.adapters.aws.dynamo_asr_job_repository import DynamoAsrJobRepository
from clipline.adapters.aws.dynamo_job_repository import DynamoJobRepository
from clipline.adapters.aws.dynamo_upload_repository import DynamoUploadRepository
from clipline.adapters.aws.s3_artifact_store import S3ArtifactStore
from clipline.composition import install
from clipline.domain.asr_jobs import AsrJob, AsrStatus
from clipline.domain.jobs import ClipRequest, JobChange, new_job
from clipline.domain.ports import IdempotencyClaim
from clipline.domain.transcription import transcript_cache_prefix
from clipline.domain.uploads import new_upload
from clipline.domain.use_cases import TRANSCRIPT_ARTIFACTS, artifact_key
from clipline.local.lambda_runtime import invoke
from tests.fakes import FixedClock, an_asr_record, create_moto_jobs_table, fake_services

HANDLER = "clipline.handlers.remove_expired_artifacts"
TABLE = "jobs"
BUCKET = "artifacts"
RETENTION = timedelta(days=7)
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/jobs/stream/2026-01-01T00:00:00.000"
MODEL_VERSION = "fake-1;language=en"

_sequence_numbers = itertools.count(4_000_000_000_000_000_000)


class World:
    """The AWS side of one test: the table, the bucket, the repositories and the installed services."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        self.s3 = boto3.client("s3", region_name="us-east-1")
        create_moto_jobs_table(self.dynamodb, TABLE)
        self.s3.create_bucket(Bucket=BUCKET)
        self.jobs = DynamoJobRepository(self.dynamodb, TABLE, clock.now)
        self.asr_jobs = DynamoAsrJobRepository(self.dynamodb, TABLE)
        self.services = fake_services(
            clock, artifacts=S3ArtifactStore(self.s3, BUCKET, clock.now), asr_jobs=self.asr_jobs, jobs=self.jobs
        )

    # Records, written as the pipeline writes them.

    def finished_job(self, transcribe: bool = True, claim_key: str | None = None) -> str:
        now = self.clock.now()
        request = ClipRequest(
            source_url="https://example.com/a.mp4", start_seconds=1, end_seconds=5, transcribe=transcribe
        )
        job = new_job(request, "key-1", "cid-1", now, RETENTION)
        claim = IdempotencyClaim("key-1", claim_key, "hash-1", now + timedelta(hours=24)) if claim_key else None
        self.jobs.create(job, claim)
        artifacts = {"clip": self.put(artifact_key(job.id, "clip.mp4"))}
        if transcribe:
            for name, (file_name, _) in TRANSCRIPT_ARTIFACTS.items():
                artifacts[name] = self.put(artifact_key(job.id, file_name))
        self.jobs.update(job.id, JobChange(artifacts=artifacts))
        return job.id

    def asr_record(self, job_id: str, media_hash: str, status: AsrStatus = AsrStatus.RUNNING, **extra) -> AsrJob:
        record = an_asr_record(
            self.clock.now(), job_id=job_id, media_hash=media_hash, model_version=MODEL_VERSION, status=status, **extra
        )
        self.asr_jobs.create(record)
        return record

    def cached_transcript(self, job_id: str, media_hash: str) -> AsrJob:
        """A transcription that finished: its canonical transcript, its done record and the cache entry."""
        record = self.asr_record(job_id, media_hash)
        key = f"{transcript_cache_prefix(media_hash, MODEL_VERSION, record.id)}transcript.json"
        self.put(key)
        return self.asr_jobs.finish(record.id, key, self.clock.now())

    def put(self, key: str) -> str:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
        return key

    def keys(self) -> set[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET)
        return {entry["Key"] for entry in listed.get("Contents", [])}

    # Stream records, as DynamoDB sends them.

    def raw_item(self, pk: str) -> dict:
        return self.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": pk}}, ConsistentRead=True)["Item"]

    def ttl_removal(self, pk: str) -> dict:
        """TTL deletes the item: the REMOVE record carries the item as it was, and the service's identity."""
        item = self.raw_item(pk)
        self.dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": pk}})
        return stream_record("REMOVE", item, old_image=item, user_identity=TTL_IDENTITY)


def stream_record(
    event_name: str,
    item: dict,
    old_image: dict | None = None,
    new_image: dict | None = None,
    user_identity: dict | None = None,
) -> dict:
    """One stream record as Lambda receives it; ``user_identity`` is there only for a TTL deletion."""
    images = {
        **({"NewImage": new_image} if new_image is not None else {}),
        **({"OldImage": old_image} if old_image is not None else {}),
    }
    record = {
        "eventID": f"{next(_sequence_numbers):x}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1767830400,
            "Keys": {"pk": item["pk"]},
            **images,
            "SequenceNumber": str(next(_sequence_numbers)),
            "SizeBytes": 512,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": STREAM_ARN,
    }
    if user_identity is not None:
        record["userIdentity"] = user_identity
    return record


def handle(*records: dict) -> dict:
    return invoke(HANDLER, {"Records": list(records)})


def sequence_number(record: dict) -> str:
    return record["dynamodb"]["SequenceNumber"]


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture
def world(clock):
    with mock_aws():
        built = World(clock)
        install(built.services)
        try:
            yield built
        finally:
            install(None)


def test_ttl_removal_of_a_job_deletes_its_files_and_no_other_jobs(world, clock):
    # Given two finished jobs with a clip and every transcript format, one of them expired
    expired = world.finished_job()
    kept = world.finished_job()
    kept_files = {key for key in world.keys() if key.startswith(f"jobs/{kept}/")}
    clock.advance(days=8)

    # When TTL removes the expired job's item
    response = handle(world.ttl_removal(f"JOB#{expired}"))

    # Then its folder is gone and the other job's files are all there
    assert response == {"batchItemFailures": []}
    assert not [key for key in world.keys() if key.startswith(f"jobs/{expired}/")]
    assert kept_files and kept_files <= world.keys()
    assert world.services.telemetry.total("ExpiredObjectsDeleted", kind="job") == 5


def test_a_replayed_removal_is_harmless(world, clock):
    # Given a job whose TTL removal was already handled
    expired = world.finished_job()
    other = world.finished_job(transcribe=False)
    clock.advance(days=8)
    removal = world.ttl_removal(f"JOB#{expired}")
    handle(removal)
    before = world.keys()

    # When the stream delivers the same record again, alone and twice in one batch
    responses = [handle(removal), handle(removal, removal)]

    # Then nothing fails and nothing else is deleted
    assert responses == [{"batchItemFailures": []}] * 2
    assert world.keys() == before
    assert f"jobs/{other}/clip.mp4" in before


def test_an_expired_done_record_whose_transcript_a_live_cache_entry_still_hands_out_is_kept(world, clock):
    # Given a cached transcript whose cache entry a later reuse extended, and a done record that
    # kept its first expiry (should the two items ever diverge)
    job_id = world.finished_job()
    entry = world.cached_transcript(job_id, "a" * 64)
    done_item = world.raw_item(f"ASR#{entry.id}")
    world.asr_jobs.extend(entry.id, clock.now() + timedelta(days=30))
    world.dynamodb.put_item(TableName=TABLE, Item=done_item)
    clock.advance(days=8)

    # When TTL removes the expired done record
    response = handle(world.ttl_removal(f"ASR#{entry.id}"))

    # Then the transcript stays, because the live cache entry still hands it out
    assert response == {"batchItemFailures": []}
    assert entry.transcript_key in world.keys()


def test_an_expired_cache_entry_no_one_points_at_loses_its_transcript_folder(world, clock):
    # Given a cached transcript, a job that reused it (with its own copies) and another audio's transcript
    first_job = world.finished_job()
    entry = world.cached_transcript(first_job, "a" * 64)
    reusing_job = world.finished_job()
    world.asr_record(
        reusing_job, "a" * 64, AsrStatus.REUSED, transcript_key=entry.transcript_key, cache_entry_id=entry.id
    )
    other = world.cached_transcript(world.finished_job(), "b" * 64)
    folder = entry.transcript_key.removesuffix("transcript.json")
    world.put(f"{folder}words.json")
    clock.advance(days=8)

    # When TTL removes the done record first, while the expired cache entry lingers (TTL runs late)
    first = handle(world.ttl_removal(f"ASR#{entry.id}"))
    after_first = world.keys()
    # ... and later the cache entry
    second = handle(world.ttl_removal(f"TRANSCRIPT#{MODEL_VERSION}#{'a' * 64}"))

    # Then the transcript folder is gone with the first, and nothing else: the reusing job keeps its own copies
    assert first == second == {"batchItemFailures": []}
    assert not [key for key in after_first if key.startswith(folder)]
    remaining = world.keys()
    assert remaining == after_first
    assert other.transcript_key in remaining
    assert artifact_key(reusing_job, "transcript.json") in remaining
    assert world.services.telemetry.total("ExpiredObjectsDeleted", kind="transcript") == 2


def test_a_newer_cache_entry_for_the_same_audio_does_not_keep_the_old_transcript(world, clock):
    # Given a cached transcript whose records TTL removed, and the same audio transcribed again since
    entry = world.cached_transcript(world.finished_job(), "a" * 64)
    clock.advance(days=8)
    removals = [world.ttl_removal(f"ASR#{entry.id}"), world.ttl_removal(f"TRANSCRIPT#{MODEL_VERSION}#{'a' * 64}")]
    newer = world.cached_transcript(world.finished_job(), "a" * 64)

    # When the stream delivers the removals
    response = handle(*removals)

    # Then the old transcript folder goes and the new entry's transcript stays
    assert response == {"batchItemFailures": []}
    remaining = world.keys()
    assert entry.transcript_key not in remaining
    assert newer.transcript_key in remaining


def test_claims_other_asr_records_inserts_and_updates_delete_nothing(world, clock):
    # Given a job with an idempotency claim, a reused and a failed ASR record on a cached transcript
    job_id = world.finished_job(claim_key="idem-1")
    entry = world.cached_transcript(world.finished_job(), "a" * 64)
    reused = world.asr_record(
        job_id, "a" * 64, AsrStatus.REUSED, transcript_key=entry.transcript_key, cache_entry_id=entry.id
    )
    failed = world.asr_record(job_id, "c" * 64, AsrStatus.FAILED)
    job_item = world.raw_item(f"JOB#{job_id}")
    before = world.keys()
    clock.advance(days=8)

    # When the claim and the ASR records expire, and the job's item is written and updated
    response = handle(
        world.ttl_removal("IDEMPOTENCY#key-1#idem-1"),
        world.ttl_removal(f"ASR#{reused.id}"),
        world.ttl_removal(f"ASR#{failed.id}"),
        stream_record("INSERT", job_item, new_image=job_item),
        stream_record("MODIFY", job_item, old_image=job_item, new_image=job_item),
    )

    # Then every record succeeds and every file stays
    assert response == {"batchItemFailures": []}
    assert world.keys() == before


def test_a_job_deleted_by_the_service_loses_its_files_unless_it_was_written_again(world):
    # Given two live jobs with idempotency claims
    deleted = world.finished_job(claim_key="idem-1")
    rewritten = world.finished_job(claim_key="idem-2")
    items = {pk: world.raw_item(pk) for pk in (f"JOB#{deleted}", "IDEMPOTENCY#key-1#idem-1", f"JOB#{rewritten}")}

    # When the service deletes both jobs with their claims (a delete by us: no userIdentity in the records),
    world.jobs.delete(deleted)
    world.jobs.delete(rewritten)
    # ... the second job's item is written back before its removal is handled (as a migration may),
    world.dynamodb.put_item(TableName=TABLE, Item=items[f"JOB#{rewritten}"])
    # ... and the stream delivers the removals
    response = handle(*(stream_record("REMOVE", item, old_image=item) for item in items.values()))

    # Then the deleted job's folder is gone and the job that is back keeps its files
    assert response == {"batchItemFailures": []}
    remaining = world.keys()
    assert not [key for key in remaining if key.startswith(f"jobs/{deleted}/")]
    assert artifact_key(rewritten, "clip.mp4") in remaining


def test_a_malformed_record_is_reported_and_the_rest_of_the_batch_still_runs(world, clock):
    # Given an expired job, and records that cannot be handled: a document that is not JSON,
    # a REMOVE without its old image, and a done record whose transcript key is not its own
    expired = world.finished_job()
    entry = world.cached_transcript(world.finished_job(), "a" * 64)
    clock.advance(days=8)
    good = world.ttl_removal(f"JOB#{expired}")
    broken_item = {**good["dynamodb"]["OldImage"], "document": {"S": "{not json"}}
    not_json = stream_record("REMOVE", broken_item, old_image=broken_item, user_identity=TTL_IDENTITY)
    keys_only = stream_record("REMOVE", broken_item, user_identity=TTL_IDENTITY)
    foreign = world.ttl_removal(f"ASR#{entry.id}")
    # The bucket's root as the transcript's folder: deleting it would empty the bucket.
    foreign["dynamodb"]["OldImage"]["document"]["S"] = entry.model_copy(
        update={"transcript_key": "transcript.json"}
    ).model_dump_json()
    before = world.keys()

    # When they arrive in one batch with the good record
    response = handle(not_json, good, keys_only, foreign)

    # Then the broken records are reported for retry, and the good one ran
    failed = [{"itemIdentifier": sequence_number(record)} for record in (not_json, keys_only, foreign)]
    assert response == {"batchItemFailures": failed}
    assert world.keys() == {key for key in before if not key.startswith(f"jobs/{expired}/")}
    assert entry.transcript_key in world.keys()



def test_ttl_removal_of_an_upload_deletes_its_object_and_no_other(world, clock):
    # Given two uploads in the table, each with its object in the bucket, one of them expired
    uploads = DynamoUploadRepository(world.dynamodb, TABLE)
    expired, kept = (
        new_upload("key-1", "talk.mp4", "video/mp4", 3, clock.now(), timedelta(minutes=15), retention)
        for retention in (timedelta(hours=1), timedelta(days=2))
    )
    for upload in (expired, kept):
        uploads.create(upload)
        world.services.artifacts.put_bytes(upload.source_key, b"abc", "video/mp4")
    clock.advance(hours=2)
    # When TTL removes the expired one's item
    response = handle(world.ttl_removal(f"UPLOAD#{expired.id}"))
    # Then its object is gone and the other's is there
    assert response == {"batchItemFailures": []}
    assert expired.source_key not in world.keys() and kept.source_key in world.keys()
    assert world.services.telemetry.total("ExpiredObjectsDeleted", kind="upload") == 1
