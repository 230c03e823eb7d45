"""Where a job sorts in its owner's list, and one page of that list.

Both stores index a job by its owner and a listing key: its creation time to the
microsecond, then its id, as text that sorts in that order. A page ends at a key,
and the next page starts below it, so a job created while a client pages through
can never shift the pages after it: nothing is missed or shown twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from .jobs import Job

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Fixed width, so that text order is time order: isoformat() drops the microseconds when they are 0.
_LISTING_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
LISTING_KEY = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z#[0-9a-f]{32}")


def listing_key(job: Job) -> str:
    return listing_key_of(job.created_at, job.id)


def listing_key_of(created_at: datetime, job_id: str) -> str:
    return f"{created_at.astimezone(timezone.utc).strftime(_LISTING_TIME_FORMAT)}#{job_id}"


@dataclass(frozen=True)
class JobPage:
    """Jobs newest first, and the listing key the next page starts below (None: this is the last page).

    A store may end a page short of its limit and still name a next page: DynamoDB
    stops a filtered query after reading a bounded number of items.
    """

    jobs: tuple[Job, ...]
    next_after: str | None
