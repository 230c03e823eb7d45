"""One contract for every UploadRepository: SQLite (local), DynamoDB (moto) and the in-memory fake."""

from contextlib import contextmanager
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws

from clipline.adapters.aws.dynamo_upload_repository import DynamoUploadRepository
from clipline.adapters.local.sqlite_upload_repository import SqliteUploadRepository
from clipline.domain.errors import UploadNotFoundError
from clipline.domain.uploads import new_upload, upload_id_of
from tests.fakes import FixedClock, InMemoryUploadRepository, create_moto_jobs_table


@contextmanager
def opened(kind, tmp_path):
    if kind == "sqlite":
        yield SqliteUploadRepository(tmp_path / "uploads.sqlite3")
    elif kind == "memory":
        yield InMemoryUploadRepository()
    else:
        with mock_aws():
            client = boto3.session.Session().client("dynamodb", region_name="us-east-1")
            create_moto_jobs_table(client)
            yield DynamoUploadRepository(client, "jobs")


@pytest.fixture(params=["sqlite", "dynamodb", "memory"])
def repository(request, tmp_path):
    with opened(request.param, tmp_path) as store:
        yield store


def an_upload(clock, name="talk.mp4", retention=timedelta(hours=24)):
    return new_upload("key-1", name, "video/mp4", 1234, clock.now(), timedelta(minutes=15), retention)


def test_a_created_upload_reads_back_equal_and_is_removed_by_delete(repository):
    clock = FixedClock()
    upload = an_upload(clock)
    repository.create(upload)
    assert repository.get(upload.id) == upload
    repository.delete(upload.id)
    with pytest.raises(UploadNotFoundError):
        repository.get(upload.id)
    repository.delete(upload.id)  # removing a missing one is not an error


def test_list_expired_finds_only_uploads_past_their_retention(repository):
    clock = FixedClock()
    day, hour = an_upload(clock), an_upload(clock, retention=timedelta(hours=1))
    repository.create(day)
    repository.create(hour)
    assert repository.list_expired(clock.now(), 10) == []
    clock.advance(hours=2)
    assert [upload.id for upload in repository.list_expired(clock.now(), 10)] == [hour.id]


def test_an_unknown_upload_is_not_found(repository):
    with pytest.raises(UploadNotFoundError):
        repository.get("0" * 32)


@pytest.mark.parametrize(
    ("file_name", "stored_as"),
    [
        ("talk.mp4", "talk.mp4"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\clip one.MOV", "clip_one.MOV"),
        ("<script>.mp4", "script_.mp4"),
        ("...", "upload"),
        ("a" * 300 + ".webm", "a" * 95 + ".webm"),
    ],
)
def test_a_file_name_becomes_one_safe_part_of_the_source_key(file_name, stored_as):
    upload = an_upload(FixedClock(), name=file_name)
    assert upload.source_key == f"uploads/{upload.id}/{stored_as}"
    assert upload_id_of(upload.source_key) == upload.id
    assert upload.file_name == file_name


@pytest.mark.parametrize("key", ["jobs/abc/clip.mp4", "uploads/../x", "uploads/" + "a" * 32, "uploads/xyz/a.mp4"])
def test_a_key_that_is_not_an_uploads_names_none(key):
    assert upload_id_of(key) is None
