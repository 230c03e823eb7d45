"""Uploads: a signed link to send a source straight to storage, and the check a job's ``sourceKey`` passes."""

from __future__ import annotations

from dataclasses import dataclass

from .. import errors
from ..ports import SignedUpload
from ..uploads import Upload, new_upload, upload_id_of, upload_prefix
from .context import Services

# S3 takes at most 5 GiB in one PUT, and the link is one PUT on both hosts.
MAX_SINGLE_PUT_BYTES = 5 * 1024**3


@dataclass(frozen=True)
class UploadLink:
    upload: Upload
    link: SignedUpload


def create_upload(services: Services, owner: str, file_name: str, content_type: str, size_bytes: int) -> UploadLink:
    """Record an upload of ``owner``'s and sign the one PUT that stores it.

    Raises:
        UploadTooLargeError: ``size_bytes`` is over the source limit (or one PUT's 5 GiB).
        ValidationFailedError: ``size_bytes`` is not positive.
        StorageUnavailableError.
    """
    if size_bytes <= 0:
        raise errors.ValidationFailedError("sizeBytes must be at least 1")
    limit = min(services.limits.max_upload_bytes, MAX_SINGLE_PUT_BYTES)
    if size_bytes > limit:
        raise errors.UploadTooLargeError(f"an upload may be at most {limit} bytes; this one declares {size_bytes}")
    assert services.uploads is not None
    limits = services.limits
    upload = new_upload(
        owner, file_name, content_type, size_bytes, services.clock.now(), limits.upload_link_ttl, limits.upload_retention
    )
    services.uploads.create(upload)
    link = services.artifacts.signed_upload(upload.source_key, content_type, size_bytes, upload.link_expires_at)
    services.telemetry.count("UploadsCreated")
    return UploadLink(upload=upload, link=link)


def uploaded_source(services: Services, owner: str, source_key: str) -> Upload:
    """The finished upload of ``owner``'s that ``source_key`` names, for a job to clip.

    What is stored must be what was declared. S3 refuses a PUT that differs, by its
    signed headers; this catches one that got through anyway, and removes it.

    Raises:
        UploadNotFoundError: no such upload, or another key's.
        UploadExpiredError: its retention has passed.
        UploadIncompleteError: nothing has been stored with its link yet.
        UploadMismatchError: the stored object's size or content type is not the declared one; it was removed.
    """
    assert services.uploads is not None
    upload_id = upload_id_of(source_key)
    if upload_id is None:
        raise errors.UploadNotFoundError("sourceKey names no upload; use the sourceKey POST /api/uploads answered")
    upload = services.uploads.get(upload_id)
    if upload.owner != owner or upload.source_key != source_key:
        raise errors.UploadNotFoundError(f"upload {upload_id} not found")
    if upload.is_expired(services.clock.now()):
        raise errors.UploadExpiredError(f"upload {upload_id} expired at {upload.expires_at.isoformat()}")
    stored = services.artifacts.stat(source_key)
    if stored is None:
        raise errors.UploadIncompleteError(f"nothing has been uploaded to upload {upload_id} yet; PUT the file first")
    wrong_type = stored.content_type is not None and stored.content_type != upload.content_type
    if stored.size_bytes != upload.size_bytes or wrong_type:
        services.artifacts.delete_prefix(upload_prefix(upload_id))
        raise errors.UploadMismatchError(
            f"upload {upload_id} stored {stored.size_bytes} bytes of {stored.content_type or 'its type'}, "
            f"not the declared {upload.size_bytes} bytes of {upload.content_type}; it was removed, upload it again"
        )
    return upload
