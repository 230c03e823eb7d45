"""One contract for every ArtifactStore: a local folder, S3 (moto) and the in-memory fake."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws

from clipline.adapters.aws.s3_artifact_store import S3ArtifactStore
from clipline.adapters.local.filesystem_artifact_store import FilesystemArtifactStore, LocalUrlSigner
from clipline.composition import boto_config
from clipline.domain.errors import ArtifactNotFoundError, LinkExpiredError, LinkInvalidError, StorageUnavailableError
from clipline.settings import Settings
from tests.fakes import FixedClock, InMemoryArtifactStore


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture(params=["folder", "s3", "memory"])
def store(request, clock, tmp_path):
    if request.param == "folder":
        yield FilesystemArtifactStore(tmp_path / "artifacts", LocalUrlSigner(b"k" * 32), "http://127.0.0.1:8080")
    elif request.param == "memory":
        yield InMemoryArtifactStore()
    else:
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket="artifacts")
            yield S3ArtifactStore(client, "artifacts", clock.now)


@pytest.fixture
def clip_file(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 1000)
    return path


def test_put_then_exists_with_size(store, clip_file):
    stored = store.put_file("jobs/j1/clip.mp4", clip_file, "video/mp4")
    assert (stored.key, stored.size_bytes, stored.content_type) == ("jobs/j1/clip.mp4", 1012, "video/mp4")
    assert store.exists("jobs/j1/clip.mp4")
    assert not store.exists("jobs/j1/other.mp4")


def test_put_overwrites_in_place(store, clip_file, tmp_path):
    store.put_file("jobs/j1/clip.mp4", clip_file, "video/mp4")
    smaller = tmp_path / "small.mp4"
    smaller.write_bytes(b"abc")
    assert store.put_file("jobs/j1/clip.mp4", smaller, "video/mp4").size_bytes == 3


def test_delete_prefix_removes_only_that_job(store, clip_file):
    store.put_file("jobs/j1/clip.mp4", clip_file, "video/mp4")
    store.put_file("jobs/j1/sub/more.bin", clip_file, "application/octet-stream")
    store.put_file("jobs/j2/clip.mp4", clip_file, "video/mp4")
    assert store.delete_prefix("jobs/j1/") == 2
    assert store.delete_prefix("jobs/j1/") == 0
    assert not store.exists("jobs/j1/clip.mp4") and store.exists("jobs/j2/clip.mp4")


def test_bytes_round_trip_and_download(store, tmp_path):
    # Given a small object stored from bytes
    stored = store.put_bytes("transcripts/h/m/transcript.json", b'{"a": 1}', "application/json")
    # When it is read back whole and downloaded to a file
    destination = tmp_path / "copy.json"
    store.download("transcripts/h/m/transcript.json", destination)
    # Then both give the same bytes
    assert stored.size_bytes == 8
    assert store.read_bytes("transcripts/h/m/transcript.json") == b'{"a": 1}'
    assert destination.read_bytes() == b'{"a": 1}'


def test_list_keys_names_every_object_under_a_prefix(store, clip_file):
    for key in ("jobs/j1/clip.mp4", "jobs/j1/transcript.srt", "jobs/j2/clip.mp4", "transcripts/v/h/r/transcript.json"):
        store.put_file(key, clip_file, "video/mp4")
    assert store.list_keys("jobs/j1/") == ["jobs/j1/clip.mp4", "jobs/j1/transcript.srt"]
    assert len(store.list_keys("")) == 4 and store.list_keys("nothing/") == []


def test_delete_prefix_takes_a_whole_key_too(store, clip_file):
    store.put_file("jobs/j1/clip.mp4", clip_file, "video/mp4")
    store.put_file("jobs/j1/clip.mp4.srt", clip_file, "text/plain")
    assert store.delete_prefix("jobs/j1/clip.mp4") == 2
    assert store.list_keys("jobs/") == []


def test_reading_a_missing_key_is_artifact_not_found(store, tmp_path):
    with pytest.raises(ArtifactNotFoundError):
        store.read_bytes("jobs/none/transcript.json")
    with pytest.raises(ArtifactNotFoundError):
        store.download("jobs/none/clip.mp4", tmp_path / "x.mp4")


def test_signed_url_names_the_key_and_expiry(store, clip_file, clock):
    store.put_file("jobs/j1/clip.mp4", clip_file, "video/mp4")
    url = store.signed_url("jobs/j1/clip.mp4", clock.now() + timedelta(minutes=30))
    assert "jobs/j1/clip.mp4" in url


def test_s3_presigned_url_lasts_until_the_expiry(clock, clip_file):
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", config=boto_config(Settings()))
        client.create_bucket(Bucket="artifacts")
        store = S3ArtifactStore(client, "artifacts", clock.now)
        url = store.signed_url("jobs/j1/clip.mp4", clock.now() + timedelta(minutes=30))
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["1800"] and "X-Amz-Signature" in query
    # And it downloads under the file's own name, as local mode's links do
    assert query["response-content-disposition"] == ['attachment; filename="clip.mp4"']


def test_s3_upload_failure_is_storage_unavailable(clock, clip_file):
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        store = S3ArtifactStore(client, "no-such-bucket", clock.now)
        with pytest.raises(StorageUnavailableError):
            store.put_file("jobs/j1/clip.mp4", clip_file, "video/mp4")


def test_local_links_refuse_tampering_and_expiry(tmp_path, clip_file, clock):
    signer = LocalUrlSigner(b"k" * 32)
    store = FilesystemArtifactStore(tmp_path / "a", signer, "http://127.0.0.1:8080")
    url = urlsplit(store.signed_url("jobs/j1/clip.mp4", clock.now() + timedelta(minutes=5)))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    signer.verify("jobs/j1/clip.mp4", query["expires"], query["signature"], clock.now())
    with pytest.raises(LinkInvalidError):
        signer.verify("jobs/j2/clip.mp4", query["expires"], query["signature"], clock.now())
    with pytest.raises(LinkInvalidError):
        signer.verify("jobs/j1/clip.mp4", str(int(query["expires"]) + 3600), query["signature"], clock.now())
    clock.advance(minutes=6)
    with pytest.raises(LinkExpiredError):
        signer.verify("jobs/j1/clip.mp4", query["expires"], query["signature"], clock.now())


def test_local_keys_cannot_escape_the_store(tmp_path):
    store = FilesystemArtifactStore(tmp_path / "a", LocalUrlSigner(b"k" * 32), "http://x")
    for key in ("../secret.key", "jobs/../../x", "/etc/passwd"):
        with pytest.raises(LinkInvalidError):
            store.path_of(key)


def test_local_write_failure_leaves_no_partial_file(tmp_path, clip_file):
    root = tmp_path / "a"
    store = FilesystemArtifactStore(root, LocalUrlSigner(b"k" * 32), "http://x")
    (root / "jobs").write_text("a file where a folder should be")
    with pytest.raises(StorageUnavailableError):
        store.put_file("jobs/j1/clip.mp4", clip_file, "video/mp4")
    assert sorted(p.name for p in root.iterdir()) == ["jobs"]


def test_s3_uploads_retry_transient_failures(clock, clip_file):
    # Given an S3 endpoint whose first two PUTs answer 503 Slow Down
    from botocore.awsrequest import AWSResponse

    failures = {"left": 2}
    attempts = []

    def throttle_first_puts(request, **_):
        attempts.append(request.url)
        if failures["left"] > 0:
            failures["left"] -= 1
            return AWSResponse(request.url, 503, {}, _Raw(b"<Error><Code>SlowDown</Code></Error>"))
        return None

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", config=boto_config(Settings(storage_max_attempts=3)))
        client.create_bucket(Bucket="artifacts")
        client.meta.events.register_first("before-send.s3.PutObject", throttle_first_puts)
        store = S3ArtifactStore(client, "artifacts", clock.now)
        # When the clip is uploaded, Then botocore's retries carry it through
        store.put_file("jobs/j1/clip.mp4", clip_file, "video/mp4")
        assert len(attempts) == 3 and store.exists("jobs/j1/clip.mp4")
        # And a store that keeps failing gives up after its 3 attempts with StorageUnavailableError
        failures["left"], attempts[:] = 10, []
        with pytest.raises(StorageUnavailableError, match="SlowDown"):
            store.put_file("jobs/j1/again.mp4", clip_file, "video/mp4")
        assert len(attempts) == 3


class _Raw:
    """The raw body botocore reads from an HTTP response."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_):
        yield self._data
