"""GET /api/jobs on the local host: a caller's own jobs, newest first, page by page."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clipline.adapters.local.sqlite_job_repository import SqliteJobRepository
from clipline.composition import SystemClock
from clipline.domain.jobs import ClipRequest, JobChange, JobStatus, new_job
from tests.local.conftest import UNTHROTTLED, Client


def stored_jobs(repository, owner: str, count: int, now) -> list[str]:
    """``count`` queued jobs of ``owner``, a millisecond apart, oldest first, written as the API would store them."""
    request = ClipRequest(source_url="https://example.com/a.mp4", start_seconds=1, end_seconds=2)
    return [
        repository.create(
            new_job(request, owner, "listing", now - timedelta(milliseconds=count - number), timedelta(days=1))
        ).id
        for number in range(count)
    ]


def pages(client: Client, query: str = "limit=100") -> list[list[str]]:
    found, cursor = [], None
    while True:
        reply = client.request("GET", "/api/jobs?" + query + (f"&cursor={cursor}" if cursor else ""))
        assert reply.status == 200, reply.body
        found.append([job["id"] for job in reply.body["jobs"]])
        cursor = reply.body["nextCursor"]
        if cursor is None:
            return found


@pytest.fixture
def caller(local):
    """A key of its own, so that the jobs other tests make are not in its list."""
    key_id, key = local.service.data.key_store(SystemClock()).create("listing", UNTHROTTLED)
    return key_id, Client(local.service.base_url, key)


def test_250_jobs_list_newest_first_page_by_page_with_none_missed_or_repeated(local, caller, media_server):
    key_id, client = caller
    repository = SqliteJobRepository(local.service.data.database, SystemClock().now)
    # Given 250 stored jobs of the caller, then one made through the API, and another caller's job
    stored = stored_jobs(repository, key_id, 250, SystemClock().now() - timedelta(seconds=1))
    created = client.create(media_server.url("long.mp4"), 0, 1)
    assert created.status == 202
    assert local.client.create(media_server.url("long.mp4"), 0, 1).status == 202
    # When the caller pages through its list, 100 at a time
    listed = pages(client)
    # Then it sees its 251 jobs, newest first, each once, on three pages
    assert [len(page) for page in listed] == [100, 100, 51]
    assert [job_id for page in listed for job_id in page] == [created.body["id"], *reversed(stored)]
    # And the default page is 20, and each job is shown as GET /api/jobs/{id} shows it
    first = client.request("GET", "/api/jobs").body
    assert len(first["jobs"]) == 20 and first["nextCursor"]
    again = client.request("GET", f"/api/jobs/{stored[-1]}").body
    assert first["jobs"][1] == again


def test_a_status_filter_lists_only_jobs_with_that_status(local, caller):
    key_id, client = caller
    repository = SqliteJobRepository(local.service.data.database, SystemClock().now)
    stored = stored_jobs(repository, key_id, 7, SystemClock().now())
    for job_id in stored[:3]:
        repository.update(job_id, JobChange(status=JobStatus.FAILED))
    assert pages(client, "status=failed&limit=2") == [[stored[2], stored[1]], [stored[0]]]
    assert [job_id for page in pages(client, "status=queued") for job_id in page] == list(reversed(stored[3:]))
    assert pages(client, "status=succeeded") == [[]]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("limit=0", "VALIDATION_FAILED"),
        ("limit=101", "VALIDATION_FAILED"),
        ("limit=ten", "VALIDATION_FAILED"),
        ("status=done", "VALIDATION_FAILED"),
        ("cursor=not-a-cursor", "INVALID_CURSOR"),
        # A well-formed base64 text that is not a position in any list
        ("cursor=aGVsbG8", "INVALID_CURSOR"),
    ],
)
def test_bad_listing_parameters_are_refused_with_their_code(local, query, code):
    reply = local.client.request("GET", f"/api/jobs?{query}")
    assert (reply.status, reply.code) == (400, code), reply.body


def test_listing_needs_a_key(local):
    reply = Client(local.service.base_url, None).request("GET", "/api/jobs")
    assert (reply.status, reply.code) == (403, "FORBIDDEN")
