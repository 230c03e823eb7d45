"""A whole local service (gateway, moto engine, SQLite, folder) on loopback, and an HTTP client for it."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from clipline.composition import SystemClock, services
from clipline.domain.rate_limits import UsagePlan
from clipline.local.service import LocalService
from clipline.settings import Settings


@dataclass
class Reply:
    status: int
    body: dict
    headers: dict[str, str]

    @property
    def code(self) -> str | None:
        return self.body.get("error", {}).get("code")


class Client:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url
        self.api_key = api_key

    def request(self, method: str, path: str, body: object = None, headers: dict | None = None, raw: bytes | None = None) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if self.api_key:
            all_headers["x-api-key"] = self.api_key
        req = urllib.request.Request(self.base_url + path, data=data, headers=all_headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return Reply(response.status, json.loads(response.read() or b"{}"), dict(response.headers))
        except urllib.error.HTTPError as error:
            return Reply(error.code, json.loads(error.read() or b"{}"), dict(error.headers))

    def create(self, source_url: str, start: object, end: object, **headers: str) -> Reply:
        return self.request("POST", "/api/jobs", {"sourceUrl": source_url, "start": start, "end": end}, headers)

    def wait(self, job_id: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.request("GET", f"/api/jobs/{job_id}").body
            if job["status"] in ("succeeded", "failed"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish in {timeout}s: {job}")


# The suite's own key polls and creates freely; the limits have tests of their own.
UNTHROTTLED = UsagePlan(rate_per_second=1000, burst=1000, quota=10**9, quota_period="day")


@dataclass
class RunningService:
    service: LocalService
    client: Client
    data_dir: Path

    def job_count(self) -> int:
        with sqlite3.connect(self.service.data.database) as db:
            return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]

    def execution_history(self, job_id: str) -> list[dict]:
        """The job's execution history, as the Step Functions console shows it."""
        arn = services().workflow.execution_arn(job_id)
        return self.service.engine.client("stepfunctions").get_execution_history(executionArn=arn)["events"]

    def artifact_files(self, job_id: str) -> list[Path]:
        folder = self.service.data.artifacts / "jobs" / job_id
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def start_service(tmp_path: Path, transcriber: object = None, **settings: object) -> RunningService:
    data_dir = tmp_path / "data"
    service = LocalService(
        Settings(data_dir=data_dir, **{"allow_private_sources": True, **settings}),
        host="127.0.0.1",
        port=0,
        transcriber=transcriber,
    )
    service.start()
    _, key = service.data.key_store(SystemClock()).create("tests", UNTHROTTLED)
    return RunningService(service, Client(service.base_url, key), data_dir)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory):
    running = start_service(tmp_path_factory.mktemp("local"), max_clip_seconds=60)
    yield running
    running.service.stop()
