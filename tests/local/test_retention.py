"""Expiry and cleanup in local mode: what expires goes, what lives stays, nothing is left without a record."""

from __future__ import annotations

import sqlite3
import time
import urllib.request

from clipline.asr.fake import FakeTranscriber
from clipline.composition import SystemClock
from tests.local.conftest import start_service
from tests.local.test_cli import clipline

SHORT = 3  # seconds a short-lived job is kept


def create(running, url, start, end, **extra) -> str:
    reply = running.client.request("POST", "/api/jobs", {"sourceUrl": url, "start": start, "end": end, **extra})
    assert reply.status == 202, reply.body
    return reply.body["id"]


def files_under(root) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def asr_rows(running) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(running.service.data.database) as db:
        return {row[0]: (row[1], row[2]) for row in db.execute("SELECT id, job_id, status FROM asr_jobs")}


def test_cleanup_removes_the_expired_and_keeps_the_live(tmp_path, media_server):
    # Given a service whose sweeper will not run during the test
    running = start_service(tmp_path, transcriber=FakeTranscriber(), asr_workers=1, cleanup_interval_seconds=3600)
    try:
        url = media_server.url("long.mp4")
        # short-lived: a transcribed job whose transcript a live job reuses, a plain clip, a transcript nobody reuses
        shared_short = create(running, url, 30, 33, transcribe=True, retentionSeconds=SHORT)
        running.client.wait(shared_short)
        live_reuser = create(running, url, 30, 33, transcribe=True)
        plain_short = create(running, url, 40, 42, retentionSeconds=SHORT)
        alone_short = create(running, url, 50, 53, transcribe=True, retentionSeconds=SHORT)
        live_plain = create(running, url, 60, 62)
        jobs = {job_id: running.client.wait(job_id) for job_id in (live_reuser, plain_short, alone_short, live_plain)}
        assert all(job["status"] == "succeeded" for job in jobs.values()), jobs
        assert jobs[live_reuser]["transcript"]["cacheHit"] is True
        # And files that no record points to, as a crash would leave them, two of them in one job's folder
        artifacts = running.service.data.artifacts
        orphans = (
            "jobs/0123456789abcdef0123456789abcdef/clip.mp4",
            "jobs/0123456789abcdef0123456789abcdef/subtitles.srt",
            "transcripts/v-1/hash/gone/transcript.json",
        )
        for orphan in orphans:
            (artifacts / orphan).parent.mkdir(parents=True, exist_ok=True)
            (artifacts / orphan).write_bytes(b"left behind")
        time.sleep(SHORT + 0.5)
        # When the short-lived ones have expired, their results are 410 while their records remain
        expired = running.client.request("GET", f"/api/jobs/{plain_short}/result")
        assert expired.status == 410 and expired.code == "RESULT_EXPIRED"
        assert running.client.request("GET", f"/api/jobs/{plain_short}").status == 200

        # When a dry run looks first, then the cleanup runs
        data_dir = ["--data-dir", str(running.data_dir)]
        before = files_under(artifacts)
        dry = clipline("cleanup", "--dry-run", *data_dir).stdout
        assert f"would remove expired job {plain_short}" in dry and files_under(artifacts) == before
        done = clipline("cleanup", *data_dir).stdout

        # Then the expired jobs are gone, with every file of theirs
        for job_id in (shared_short, plain_short, alone_short):
            assert f"removed expired job {job_id}" in done
            assert running.client.request("GET", f"/api/jobs/{job_id}").status == 404
            assert not any(key.startswith(f"jobs/{job_id}/") for key in files_under(artifacts))
        # And the live jobs keep theirs, downloadable
        for job_id in (live_reuser, live_plain):
            result = running.client.request("GET", f"/api/jobs/{job_id}/result").body
            for artifact in result["artifacts"]:
                with urllib.request.urlopen(artifact["url"]) as response:
                    assert response.status == 200
        # And the transcript the live job reused stays cached, while the one nobody reused is gone
        rows = asr_rows(running)
        assert [status for job_id, status in rows.values() if status == "done"] == ["done"]
        [(entry_id, _)] = [(asr_id, row) for asr_id, row in rows.items() if row[1] == "done"]
        assert jobs[live_reuser]["transcript"]["asrJobId"] in rows
        remaining = files_under(artifacts)
        assert sum(key.startswith("transcripts/") for key in remaining) == 1, (remaining, rows, done)
        assert any(f"/{entry_id}/" in key for key in remaining if key.startswith("transcripts/"))
        # And no file is left that no record points to
        assert all(f"removed orphaned file {orphan}" in done for orphan in orphans), done
        live_ids = {live_reuser, live_plain}
        for key in remaining:
            parts = key.split("/")
            assert (parts[0] == "jobs" and parts[1] in live_ids) or (parts[0] == "transcripts" and parts[3] in rows), key
        # And a second run finds nothing to do
        assert clipline("cleanup", *data_dir).stdout.strip().endswith("0 file(s) removed")
    finally:
        running.service.stop()


def test_the_sweeper_in_serve_removes_expired_jobs_on_its_own(tmp_path, media_server):
    running = start_service(tmp_path, transcriber=FakeTranscriber(), cleanup_interval_seconds=0.5)
    try:
        job_id = create(running, media_server.url("long.mp4"), 5, 7, retentionSeconds=3)
        running.client.wait(job_id)
        deadline = time.monotonic() + 15
        archive = running.service.data.execution_archive(SystemClock())
        while archive.find(job_id) is None:
            assert time.monotonic() < deadline, "the execution's history was not archived"
            time.sleep(0.2)
        while running.client.request("GET", f"/api/jobs/{job_id}").status != 404:
            assert time.monotonic() < deadline, "the sweeper did not remove the expired job"
            time.sleep(0.2)
        assert not (running.service.data.artifacts / "jobs" / job_id).exists()
        # And its execution history goes with it
        while archive.find(job_id) is not None:
            assert time.monotonic() < deadline, "the sweeper did not remove the expired job's history"
            time.sleep(0.2)
    finally:
        running.service.stop()
