"""Artifacts in S3, handed out as presigned GET URLs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from ...domain.errors import ArtifactNotFoundError, StorageUnavailableError
from ...domain.ports import SignedUpload, StoredArtifact, StoredObject

# SigV4 presigned URLs cannot live longer than a week.
_MAX_PRESIGN_SECONDS = 7 * 24 * 3600


class S3ArtifactStore:
    """ArtifactStore on an S3 bucket.

    Retries are botocore's (standard mode: jittered exponential backoff), set on
    the client by clipline.composition; a failure past them is StorageUnavailableError.
    """

    def __init__(self, client: Any, bucket: str, now: Callable[[], datetime]) -> None:
        self._client = client
        self._bucket = bucket
        self._now = now

    def put_file(self, key: str, path: Path, content_type: str) -> StoredArtifact:
        try:
            self._client.upload_file(str(path), self._bucket, key, ExtraArgs={"ContentType": content_type})
        except (ClientError, BotoCoreError, S3UploadFailedError) as error:
            raise StorageUnavailableError(f"could not upload {key}: {error}") from error
        return StoredArtifact(key=key, size_bytes=path.stat().st_size, content_type=content_type)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredArtifact:
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailableError(f"could not upload {key}: {error}") from error
        return StoredArtifact(key=key, size_bytes=len(data), content_type=content_type)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as error:
            raise self._read_error(key, error) from error
        except BotoCoreError as error:
            raise StorageUnavailableError(f"could not read {key}: {error}") from error

    def download(self, key: str, destination: Path) -> None:
        try:
            self._client.download_file(self._bucket, key, str(destination))
        except ClientError as error:
            raise self._read_error(key, error) from error
        except BotoCoreError as error:
            raise StorageUnavailableError(f"could not read {key}: {error}") from error

    @staticmethod
    def _read_error(key: str, error: ClientError) -> Exception:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return ArtifactNotFoundError(f"no artifact {key}")
        return StorageUnavailableError(f"could not read {key}: {error}")

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def list_keys(self, prefix: str) -> list[str]:
        try:
            return [
                item["Key"]
                for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailableError(f"could not list {prefix}: {error}") from error

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
                objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if objects:
                    self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": objects, "Quiet": True})
                    deleted += len(objects)
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailableError(f"could not delete {prefix}: {error}") from error
        return deleted

    def signed_url(self, key: str, expires_at: datetime) -> str:
        seconds = int((expires_at - self._now()).total_seconds())
        # Downloaded under its own name, as local mode's links are, not shown inline under the key's.
        disposition = f'attachment; filename="{key.rsplit("/", 1)[-1]}"'
        return self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self._bucket, "Key": key, "ResponseContentDisposition": disposition},
            ExpiresIn=max(1, min(seconds, _MAX_PRESIGN_SECONDS)),
        )

    def signed_upload(self, key: str, content_type: str, size_bytes: int, expires_at: datetime) -> SignedUpload:
        # Both headers are signed: S3 refuses a PUT whose body length or content type differs.
        url = self._client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self._bucket, "Key": key, "ContentType": content_type, "ContentLength": size_bytes},
            ExpiresIn=self._presign_seconds(expires_at),
        )
        return SignedUpload(url=url, headers={"Content-Type": content_type, "Content-Length": str(size_bytes)})

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageUnavailableError(f"could not look up {key}: {error}") from error
        except BotoCoreError as error:
            raise StorageUnavailableError(f"could not look up {key}: {error}") from error
        return StoredObject(size_bytes=int(head["ContentLength"]), content_type=head.get("ContentType"))

    def source_location(self, key: str, expires_at: datetime) -> str:
        # ffmpeg reads it with Range requests straight from S3, as it would any https source.
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=self._presign_seconds(expires_at)
        )

    def _presign_seconds(self, expires_at: datetime) -> int:
        return max(1, min(int((expires_at - self._now()).total_seconds()), _MAX_PRESIGN_SECONDS))
