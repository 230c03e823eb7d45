"""Artifacts in a local folder, handed out as HMAC-signed links the local gateway serves."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable
from urllib.parse import quote, urlencode

from ...domain.errors import (
    ArtifactNotFoundError,
    LinkExpiredError,
    LinkInvalidError,
    StorageUnavailableError,
    ValidationFailedError,
)
from ...domain.ports import SignedUpload, StoredArtifact, StoredObject


class LocalUrlSigner:
    """Signs (key, expiry) with HMAC-SHA256, the local stand-in for S3 presigned URLs.

    An upload link also signs the method and the declared content type and size, as
    an S3 presigned PUT signs its headers, so none can be changed.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def signature(self, key: str, expires_epoch: int) -> str:
        return self._mac(f"{key}\n{expires_epoch}")

    def upload_signature(self, key: str, expires_epoch: int, content_type: str, size_bytes: int) -> str:
        return self._mac(f"PUT\n{key}\n{expires_epoch}\n{content_type}\n{size_bytes}")

    def verify(self, key: str, expires: str, signature: str, now: datetime) -> None:
        """Raises:
        LinkInvalidError: the link was altered or is not one of ours.
        LinkExpiredError: the link is genuine but past its expiry.
        """
        if not expires.isdigit():
            raise LinkInvalidError("the link is malformed")
        expected = self.signature(key, int(expires))
        _check(expected, signature, int(expires), now, "the link", "GET /api/jobs/{id}/result")

    def verify_upload(
        self, key: str, expires: str, content_type: str, size: str, signature: str, now: datetime
    ) -> None:
        """Raises:
        LinkInvalidError: the link was altered, or is not an upload link of ours.
        LinkExpiredError: the link is genuine but past its expiry.
        """
        if not expires.isdigit() or not size.isdigit():
            raise LinkInvalidError("the upload link is malformed")
        expected = self.upload_signature(key, int(expires), content_type, int(size))
        _check(expected, signature, int(expires), now, "the upload link", "POST /api/uploads")

    def _mac(self, message: str) -> str:
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()


def _check(expected: str, signature: str, expires_epoch: int, now: datetime, link: str, renewal: str) -> None:
    """A link's signature, then its expiry: a forged link is refused as invalid, whatever its expiry says."""
    if not hmac.compare_digest(expected, signature):
        raise LinkInvalidError(f"{link}'s signature does not match")
    if now.timestamp() >= expires_epoch:
        raise LinkExpiredError(f"{link} has expired; ask {renewal} for a new one")


# A write in progress: a hidden name in the target's folder, renamed into place when complete.
_PARTIAL = ".partial"
_COPY_CHUNK = 1024 * 1024


class FilesystemArtifactStore:
    """ArtifactStore on a folder. Writes go to a temporary name and are renamed into place."""

    def __init__(self, root: Path, signer: LocalUrlSigner, public_url: str) -> None:
        self._root = root.resolve()
        self._root.mkdir(parents=True, exist_ok=True)
        self._signer = signer
        self._public_url = public_url.rstrip("/")

    def path_of(self, key: str) -> Path:
        """The file behind ``key``; a key that escapes the store is refused with LinkInvalidError."""
        path = (self._root / key).resolve()
        if not path.is_relative_to(self._root) or path == self._root:
            raise LinkInvalidError(f"invalid artifact key {key!r}")
        return path

    def put_file(self, key: str, path: Path, content_type: str) -> StoredArtifact:
        return self._write(key, lambda partial: shutil.copyfile(path, partial), content_type)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredArtifact:
        return self._write(key, lambda partial: partial.write_bytes(data), content_type)

    def _write(self, key: str, write_to: Callable[[Path], object], content_type: str) -> StoredArtifact:
        target = self.path_of(key)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}{_PARTIAL}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_to(partial)
            os.replace(partial, target)
        except BaseException as error:
            # Nothing half-written stays, whatever stopped the write.
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            if isinstance(error, OSError):
                raise StorageUnavailableError(f"could not store {key}: {error.strerror or error}") from error
            raise
        return StoredArtifact(key=key, size_bytes=target.stat().st_size, content_type=content_type)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path_of(key).read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"no artifact {key}") from None
        except OSError as error:
            raise StorageUnavailableError(f"could not read {key}: {error.strerror or error}") from error

    def download(self, key: str, destination: Path) -> None:
        try:
            shutil.copyfile(self.path_of(key), destination)
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"no artifact {key}") from None
        except OSError as error:
            raise StorageUnavailableError(f"could not read {key}: {error.strerror or error}") from error

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        # Walk only the folder the prefix names, not the whole store: the sweeper deletes job by job.
        folder = self.path_of(prefix.rsplit("/", 1)[0]) if "/" in prefix else self._root
        if not folder.is_dir():
            return []
        # Partial files (a write in progress) are not objects yet.
        return sorted(
            key
            for path in folder.rglob("*")
            if path.is_file()
            and not path.name.endswith(_PARTIAL)
            and (key := path.relative_to(self._root).as_posix()).startswith(prefix)
        )

    def delete_prefix(self, prefix: str) -> int:
        # S3's meaning of a prefix: a folder ("jobs/1/") or a whole key ("jobs/1/clip.mp4") alike.
        keys = self.list_keys(prefix)
        for key in keys:
            self.path_of(key).unlink(missing_ok=True)
        self._prune_empty_folders(self.path_of(prefix.rstrip("/")))
        return len(keys)

    def remove_abandoned_writes(self) -> list[str]:
        """Delete the partial files of writes that never finished, and the folders that leaves empty; their paths.

        A write killed with its process leaves its partial file behind, which no listing
        shows and so no removal by prefix reaches. Only safe while nothing writes to the
        store: local mode calls it when it starts alone on its data dir. The local
        stand-in for the bucket's rule that aborts incomplete multipart uploads.
        """
        removed = []
        for path in sorted(self._root.rglob(f"*{_PARTIAL}")):
            if path.is_file():
                path.unlink(missing_ok=True)
                self._prune_empty_folders(path.parent)
                removed.append(path.relative_to(self._root).as_posix())
        return removed

    def _prune_empty_folders(self, start: Path) -> None:
        folder = start if start.is_dir() else start.parent
        while folder != self._root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent

    def signed_url(self, key: str, expires_at: datetime) -> str:
        expires = int(expires_at.timestamp())
        query = urlencode({"expires": expires, "signature": self._signer.signature(key, expires)})
        return f"{self._public_url}/artifacts/{quote(key)}?{query}"

    def signed_upload(self, key: str, content_type: str, size_bytes: int, expires_at: datetime) -> SignedUpload:
        expires = int(expires_at.timestamp())
        signature = self._signer.upload_signature(key, expires, content_type, size_bytes)
        query = urlencode({"expires": expires, "type": content_type, "size": size_bytes, "signature": signature})
        return SignedUpload(
            url=f"{self._public_url}/uploads/{quote(key)}?{query}",
            headers={"Content-Type": content_type, "Content-Length": str(size_bytes)},
        )

    def put_stream(self, key: str, body: BinaryIO, size_bytes: int) -> StoredArtifact:
        """Store exactly ``size_bytes`` read from ``body``; a body that ends short stores nothing.

        Raises:
            ValidationFailedError: the body ended before ``size_bytes``.
            StorageUnavailableError.
        """

        def copy(partial: Path) -> None:
            remaining = size_bytes
            with partial.open("wb") as file:
                while remaining > 0:
                    try:
                        chunk = body.read(min(remaining, _COPY_CHUNK))
                    except OSError:
                        chunk = b""  # the client went away: the same as a body that ends
                    if not chunk:
                        raise ValidationFailedError(f"the body ended {remaining} bytes short of its Content-Length")
                    file.write(chunk)
                    remaining -= len(chunk)

        return self._write(key, copy, "application/octet-stream")

    def stat(self, key: str) -> StoredObject | None:
        path = self.path_of(key)
        # The gateway checked the content type when it stored the object; nothing here keeps it.
        return StoredObject(size_bytes=path.stat().st_size, content_type=None) if path.is_file() else None

    def source_location(self, key: str, expires_at: datetime) -> str:
        return f"file:{self.path_of(key)}"
