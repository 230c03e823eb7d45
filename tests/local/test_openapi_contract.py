"""The OpenAPI document against the running service: `clipline serve` on loopback, driven by schemathesis.

The server is a real `clipline serve` process with a key of its own. Sources are
restricted to 127.0.0.1, so a generated job that passes validation fails fast
at probe instead of reaching out.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from clipline.api.correlation import CORRELATION_HEADER
from clipline.api.openapi import openapi_document
from clipline.api.routes import API_ROUTES

pytestmark = pytest.mark.slow

SERVER_START_SECONDS = 60


@dataclass
class LiveServer:
    base_url: str
    key: str
    sample_url: str
    # Jobs in each state a client meets: name -> id.
    jobs: dict[str, str] = field(default_factory=dict)
    # A running and a succeeded job of their own for DELETE, which cancels or deletes them.
    disposable: dict[str, str] = field(default_factory=dict)


def _clipline(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "clipline.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _stop(process: subprocess.Popen) -> int:
    process.terminate()
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, media_server):
    data_dir = tmp_path_factory.mktemp("contract")
    env = {
        **os.environ,
        "CLIPLINE_DATA_DIR": str(data_dir),
        "CLIPLINE_ALLOW_PRIVATE_SOURCES": "true",
        "CLIPLINE_SOURCE_ALLOWLIST": "127.0.0.1",
        "CLIPLINE_ASR_PROVIDER": "fake",
        "CLIPLINE_MAX_CLIP_SECONDS": "30",
        "CLIPLINE_JOB_CREATIONS_PER_IP_PER_MINUTE": "100000",
        # The job on a source that never answers stays running for the whole run.
        "CLIPLINE_FIRST_BYTE_TIMEOUT_SECONDS": "300",
        "CLIPLINE_PROBE_TIMEOUT_SECONDS": "300",
    }
    ready_file = data_dir / "ready"
    silent_source = socket.socket()
    silent_source.bind(("127.0.0.1", 0))
    silent_source.listen()
    with (data_dir / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "clipline.cli", "serve", "--port", "0", "--ready-file", str(ready_file)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not ready_file.is_file() or not ready_file.read_text().strip():
            assert process.poll() is None, (data_dir / "serve.log").read_text()
            assert time.monotonic() < deadline, "clipline serve did not become ready"
            time.sleep(0.2)
        # Generous limits: throttling has tests of its own, and would only hide the contract here.
        key = _clipline(
            "keys", "create", "--name", "contract", "--rate", "1000", "--burst", "1000", "--quota", "1000000", env=env
        )
        server = LiveServer(ready_file.read_text().strip(), key, media_server.url("long.mp4"))
        silent_url = f"http://127.0.0.1:{silent_source.getsockname()[1]}/never.mp4"
        server.jobs = _jobs_in_every_state(server, silent_url)
        server.disposable = _disposable_jobs(server, silent_url)
        yield server
    finally:
        code = _stop(process)
        silent_source.close()
    assert code == 0, "clipline serve did not stop cleanly"
    log_text = (data_dir / "serve.log").read_text()
    assert "unexpected error" not in log_text and "gateway failure" not in log_text, log_text


def _jobs_in_every_state(server: LiveServer, silent_url: str) -> dict[str, str]:
    headers = {"x-api-key": server.key}

    def create(**body: object) -> str:
        reply = requests.post(f"{server.base_url}/api/jobs", json=body, headers=headers, timeout=30)
        assert reply.status_code == 202, reply.text
        return reply.json()["id"]

    def wait_for(job_id: str, status: str) -> None:
        deadline = time.monotonic() + 60
        while requests.get(f"{server.base_url}/api/jobs/{job_id}", headers=headers, timeout=10).json()["status"] != status:
            assert time.monotonic() < deadline, f"job {job_id} never became {status}"
            time.sleep(0.2)

    jobs = {
        "succeeded": create(sourceUrl=server.sample_url, start=1, end=2),
        "failed": create(sourceUrl=server.sample_url, start=185, end=190),  # past the 180 s source's end
        "running": create(sourceUrl=silent_url, start=1, end=2),
        "expired": create(sourceUrl=server.sample_url, start=1, end=2, retentionSeconds=1),
        # Its receiver is the media server, which answers 404: the message is pending, and may be redelivered.
        "announced": create(sourceUrl=server.sample_url, start=1, end=2, webhookUrl=server.sample_url + "/hook"),
    }
    wait_for(jobs["succeeded"], "succeeded")
    wait_for(jobs["announced"], "succeeded")
    wait_for(jobs["failed"], "failed")
    wait_for(jobs["expired"], "succeeded")
    time.sleep(1)  # past the expired job's retention
    return jobs


def _disposable_jobs(server: LiveServer, silent_url: str) -> dict[str, str]:
    headers = {"x-api-key": server.key}
    jobs = {}
    for name, source in (("to cancel", silent_url), ("to delete", server.sample_url)):
        reply = requests.post(f"{server.base_url}/api/jobs", json={"sourceUrl": source, "start": 1, "end": 2},
                              headers=headers, timeout=30)  # fmt: skip
        assert reply.status_code == 202, reply.text
        jobs[name] = reply.json()["id"]
    deadline = time.monotonic() + 60
    url = f"{server.base_url}/api/jobs/{jobs['to delete']}"
    while requests.get(url, headers=headers, timeout=10).json()["status"] != "succeeded":
        assert time.monotonic() < deadline, "the job to delete never succeeded"
        time.sleep(0.2)
    return jobs


@pytest.fixture(scope="module")
def api_schema(live_server: LiveServer):
    # Loaded from the server, as a client would: this is also the test that it serves the document.
    schema = schemathesis.openapi.from_url(live_server.base_url + "/openapi.json")
    schema.config.update(base_url=live_server.base_url)
    # The key is given with each call, not generated: schemathesis then also probes each
    # operation without it and with a wrong one, and expects those refused.
    schema.config.generation.update(with_security_parameters=False)
    return schema


def error_envelope_exactly(ctx, response, case) -> None:
    """Every error is `{"error": {"code", "message", "correlationId"}}` and names the response's correlation id."""
    if response.status_code < 400:
        return
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "correlationId"}, body
    assert body["error"]["code"].isupper() and body["error"]["message"], body
    assert body["error"]["correlationId"] == response.headers[CORRELATION_HEADER][0], body


# Invalid input exists only for a body: an id in the path and the headers are any string.
# Negative cases where the request has something to get wrong beyond the path: a body, or the listing's query.
LISTING = next(route for route in API_ROUTES if (route.method, route.resource) == ("GET", "/api/jobs"))
GENERATED = [(route, GenerationMode.POSITIVE) for route in API_ROUTES] + [
    (route, GenerationMode.NEGATIVE) for route in API_ROUTES if route.takes_body or route is LISTING
]


def _cases(operation, route, mode, server: LiveServer):
    """Generated cases, with some aimed at what works: a real source, and jobs in every state.

    Left alone, generation would only ever meet 400s and 404s, and the success
    and conflict answers would never be checked against the document.
    """
    generated = operation.as_strategy(mode)
    if not route.takes_body:
        # DELETE changes the jobs it is given, which the other routes' cases read: it gets its own.
        ids = server.disposable if route.method == "DELETE" else server.jobs
        known = [operation.as_strategy(mode, path_parameters={"id": job_id}) for job_id in ids.values()]
        return st.one_of(generated, *known)
    if mode is GenerationMode.NEGATIVE:
        return generated

    def runnable(case, use_sample: bool):
        if use_sample and isinstance(case.body, dict) and route.resource == "/api/jobs":
            case.body.update(sourceUrl=server.sample_url, start=1, end=2)
        return case

    return st.tuples(generated, st.booleans()).map(lambda pair: runnable(*pair))


@pytest.mark.parametrize(
    ("route", "mode"), GENERATED, ids=[f"{route.method} {route.resource} {mode.value}" for route, mode in GENERATED]
)
def test_every_response_conforms_to_the_openapi_document(api_schema, live_server, route, mode) -> None:
    operation = api_schema[route.resource][route.method]
    statuses: set[int] = set()

    # Bounded in examples, and derandomized so a failure reproduces run after run.
    @given(case=_cases(operation, route, mode, live_server))
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    def conforms(case) -> None:
        # No 5xx, a documented status and content type, headers and a body that match the
        # document, invalid input refused with a 4xx, and every error in the one envelope.
        # A schema-valid body may still be refused (400): start before end, the source policy and
        # timecode syntax are checked by the service, not by JSON Schema. So that check is left out.
        response = case.call_and_validate(
            headers={"x-api-key": live_server.key},
            additional_checks=[error_envelope_exactly],
            excluded_checks=[positive_data_acceptance],
            timeout=30,
        )
        statuses.add(response.status_code)

    conforms()
    # And the run met the answers that matter, not only refusals
    if route.resource.endswith("/webhook/redeliver"):
        # Redelivered, an unknown job, and one without a webhook or not ended yet.
        expected = {202, 404, 409}
    elif route.resource == "/api/uploads":
        # A link, and a refused body (too large a size is a 413 of its own, met only by chance).
        expected = {201, 400} if mode is GenerationMode.POSITIVE else {400}
    elif route is LISTING:
        # A page, and a refused cursor or limit; there is no job to miss.
        expected = {200, 400} if mode is GenerationMode.POSITIVE else {400}
    else:
        expected = {
            ("POST", GenerationMode.POSITIVE): {202, 400},
            ("POST", GenerationMode.NEGATIVE): {400},
            ("GET", GenerationMode.POSITIVE): {200, 404} | ({409, 410} if route.resource.endswith("/result") else set()),
            # Cancelled (the running job), nothing left to do (the ended one, and either again), and an unknown id.
            ("DELETE", GenerationMode.POSITIVE): {202, 204, 404},
        }[(route.method, mode)]
    assert expected <= statuses, f"only met {sorted(statuses)}"


def test_the_served_document_is_the_committed_one(live_server: LiveServer) -> None:
    served = requests.get(live_server.base_url + "/openapi.json", timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "application/json"
    committed = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
    assert served.json() == committed == openapi_document()


def test_a_job_created_from_the_documented_example_matches_the_document(live_server: LiveServer, media_server) -> None:
    # The generated cases mostly exercise refusals; this one follows a job to success
    # and checks each answer against the document too.
    api = schemathesis.openapi.from_dict(openapi_document())
    headers = {"x-api-key": live_server.key}
    created = requests.post(
        live_server.base_url + "/api/jobs",
        json={"sourceUrl": media_server.url("long.mp4"), "start": 1, "end": 3},
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 202, created.text
    api["/api/jobs"]["POST"].validate_response(created)
    job_id = created.json()["id"]
    deadline = time.monotonic() + 60
    while (status := requests.get(f"{live_server.base_url}/api/jobs/{job_id}", headers=headers, timeout=10)).json()[
        "status"
    ] not in ("succeeded", "failed"):
        api["/api/jobs/{id}"]["GET"].validate_response(status)
        assert time.monotonic() < deadline
        time.sleep(0.2)
    api["/api/jobs/{id}"]["GET"].validate_response(status)
    assert status.json()["status"] == "succeeded", status.json()
    result = requests.get(f"{live_server.base_url}/api/jobs/{job_id}/result", headers=headers, timeout=10)
    assert result.status_code == 200
    api["/api/jobs/{id}/result"]["GET"].validate_response(result)
