"""Many requests at once: each is answered as its own caller, with its own correlation id."""

from __future__ import annotations

import threading

import pytest

from clipline.composition import SystemClock
from tests.local.conftest import UNTHROTTLED, Client

pytestmark = pytest.mark.slow

READS_PER_CALLER = 150


def test_concurrent_callers_each_see_only_their_own_job_under_their_own_correlation_id(local, stalled_source_url):
    # Given three callers with their own keys, each with a job (kept running by a silent source)
    callers = []
    for name in ("ada", "bea", "cyd"):
        _, key = local.service.data.key_store(SystemClock()).create(name, UNTHROTTLED)
        client = Client(local.client.base_url, key)
        created = client.create(stalled_source_url, 1, 2)
        assert created.status == 202, created.body
        callers.append((name, client, created.body["id"]))
    problems: list[str] = []

    def read_own_job(name: str, client: Client, job_id: str) -> None:
        for number in range(READS_PER_CALLER):
            correlation = f"{name}-{number}"
            reply = client.request("GET", f"/api/jobs/{job_id}", headers={"x-correlation-id": correlation})
            if reply.status != 200 or reply.body.get("id") != job_id:
                problems.append(f"{name}: {reply.status} {reply.body}")
            if reply.headers.get("x-correlation-id") != correlation:
                problems.append(f"{name}: answered as {reply.headers.get('x-correlation-id')}, sent {correlation}")

    # When they all read their own job at the same time
    threads = [threading.Thread(target=read_own_job, args=caller) for caller in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    # Then every answer was theirs: no other caller's identity or correlation id leaked into it
    assert problems == [], problems[:5]
