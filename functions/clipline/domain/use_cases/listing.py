"""Listing a caller's jobs, newest first, a page at a time."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from .. import errors
from ..job_listing import DEFAULT_PAGE_SIZE, LISTING_KEY, MAX_PAGE_SIZE
from ..jobs import Job, JobStatus
from .context import Services


@dataclass(frozen=True)
class JobListing:
    jobs: tuple[Job, ...]
    # Hands the next page to the next call; None on the last page.
    next_cursor: str | None


def list_jobs(
    services: Services,
    owner: str,
    *,
    status: JobStatus | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> JobListing:
    """``owner``'s jobs, newest first, up to ``limit``; ``cursor`` (from the page before) goes on from there.

    A page may hold fewer than ``limit`` jobs and still have a next one (see JobPage);
    only a missing ``next_cursor`` means the list has ended.

    Raises:
        ValidationFailedError: ``limit`` is not 1 to MAX_PAGE_SIZE.
        InvalidCursorError: ``cursor`` is not one this service handed out.
        StorageUnavailableError.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise errors.ValidationFailedError(f"limit must be 1 to {MAX_PAGE_SIZE}")
    after = _listing_key_in(cursor) if cursor is not None else None
    page = services.jobs.list_owned(owner, status=status, limit=limit, after=after)
    return JobListing(jobs=page.jobs, next_cursor=_cursor_for(page.next_after) if page.next_after else None)


def _cursor_for(listing_key: str) -> str:
    # Opaque to clients, so that what a cursor holds can change without breaking them.
    return base64.urlsafe_b64encode(listing_key.encode()).decode().rstrip("=")


def _listing_key_in(cursor: str) -> str:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not LISTING_KEY.fullmatch(key):
        raise errors.InvalidCursorError("cursor is not one this service handed out; start again without it")
    return key
