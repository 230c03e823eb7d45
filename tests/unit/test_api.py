"""The API handlers, called in-process with API Gateway REST proxy events and fake services."""

import base64
import json
import pytest

from clipline import composition
from clipline.handlers import create_job, get_job, get_job_result
from clipline.local.lambda_runtime import LocalLambdaContext
from clipline.domain.use_cases import fail_job
from tests.fakes import FixedClock, fake_services


@pytest.fixture(autouse=True)
def services():
    services = fake_services(FixedClock())
    composition.install(services)
    yield services
    composition.install(None)


def event(method, path, body=None, headers=None, key_id="key-1", resource=None, path_parameters=None):
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "pathParameters": path_parameters,
        "requestContext": {
            "requestId": "req-123",
            "stage": "local",
            "path": path,
            "httpMethod": method,
            "resourcePath": resource or path,
            "identity": {"apiKeyId": key_id, "sourceIp": "127.0.0.1"},
        },
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def call(handler, evt):
    response = handler.lambda_handler(evt, LocalLambdaContext("test"))
    # The REST resolver answers with multiValueHeaders, as API Gateway's proxy integration allows.
    headers = {name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()}
    return response["statusCode"], json.loads(response["body"]), {**headers, **(response.get("headers") or {})}


def post(body, headers=None):
    return call(create_job, event("POST", "/api/jobs", body, headers))


def test_create_returns_202_with_the_job_and_links():
    status, body, headers = post({"sourceUrl": "https://example.com/a.mp4", "start": "00:01:00", "end": 70.5})
    assert status == 202
    assert body["status"] == "queued" and body["progress"] == 0
    assert body["links"] == {"self": f"/api/jobs/{body['id']}", "result": f"/api/jobs/{body['id']}/result"}
    assert headers["Location"] == f"/api/jobs/{body['id']}"
    assert headers["Retry-After"] == "2"
    assert headers["x-correlation-id"] == "req-123"


def test_the_callers_correlation_id_is_echoed_and_used():
    status, body, headers = post({"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 2}, {"X-Correlation-Id": "trace-42"})
    assert status == 202 and headers["x-correlation-id"] == "trace-42"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "MALFORMED_JSON"),
        ({"start": 1, "end": 2}, "VALIDATION_FAILED"),
        ({"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 2, "surprise": 1}, "VALIDATION_FAILED"),
        ({"sourceUrl": "https://e.com/a.mp4", "start": 5, "end": 5}, "INVALID_TIME_RANGE"),
        ({"sourceUrl": "https://e.com/a.mp4", "start": -5, "end": 5}, "INVALID_TIME_RANGE"),
        ({"sourceUrl": "https://e.com/a.mp4", "start": "1:99", "end": 5}, "INVALID_TIMECODE"),
        ({"sourceUrl": "https://e.com/a.mp4", "start": 0, "end": 3600}, "CLIP_TOO_LONG"),
        # Input limits: lengths are bounded before anything is parsed or fetched.
        ({"sourceUrl": "https://e.com/" + "a" * 2048, "start": 1, "end": 2}, "VALIDATION_FAILED"),
        ({"sourceUrl": "https://e.com/a.mp4", "start": "00:" + "0" * 30, "end": 2}, "VALIDATION_FAILED"),
        ({"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 2, "language": "english"}, "VALIDATION_FAILED"),
        ({"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 2, "retentionSeconds": 0}, "VALIDATION_FAILED"),
    ],
)
def test_bad_requests_get_the_envelope_with_one_code_each(body, code, services):
    status, response, headers = post(body, {"x-correlation-id": "bad-1"})
    assert status == 400
    assert response == {"error": {"code": code, "message": response["error"]["message"], "correlationId": "bad-1"}}
    assert response["error"]["message"]
    assert headers["x-correlation-id"] == "bad-1"
    assert services.jobs._jobs == {}


def test_unknown_job_is_404_in_the_envelope():
    status, body, _ = call(get_job, event("GET", "/api/jobs/nope", resource="/api/jobs/{id}", path_parameters={"id": "nope"}))
    assert status == 404 and body["error"]["code"] == "JOB_NOT_FOUND" and body["error"]["correlationId"] == "req-123"


@pytest.mark.parametrize("job_id", ["nope", "A" * 32, "0" * 31, "0" * 33, "0" * 31 + "g", "0" * 32 + " "])
@pytest.mark.parametrize("suffix", ["", "/result"])
def test_a_malformed_job_id_is_404_without_a_lookup(services, job_id, suffix):
    # Given a store that records every lookup
    looked_up = []
    real_get = services.jobs.get
    services.jobs.get = lambda wanted: looked_up.append(wanted) or real_get(wanted)
    # When a job id that is not 32 lowercase hex digits is asked for
    handler, resource = (get_job_result, "/api/jobs/{id}/result") if suffix else (get_job, "/api/jobs/{id}")
    status, body, _ = call(handler, event("GET", f"/api/jobs/{job_id}{suffix}", resource=resource, path_parameters={"id": job_id}))
    # Then it is an unknown job, and the store was never asked
    assert status == 404 and body["error"]["code"] == "JOB_NOT_FOUND"
    assert looked_up == []


def test_a_body_that_is_not_utf8_is_malformed_json_not_a_server_error():
    # Given a body of raw bytes, which the gateway passes base64-encoded
    undecodable = event("POST", "/api/jobs")
    undecodable["body"] = base64.b64encode(b"\xff\xfe8<\x1bb&z\xe9*").decode()
    undecodable["isBase64Encoded"] = True
    # Then it is refused as such, in the envelope
    status, body, _ = call(create_job, undecodable)
    assert status == 400 and body["error"]["code"] == "MALFORMED_JSON"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_415(content_type):
    status, body, _ = post({"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 2}, {"Content-Type": content_type})
    assert status == 415 and body["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_media_types_are_case_insensitive():
    status, _, _ = post({"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 2}, {"Content-Type": "Application/JSON; charset=UTF-8"})
    assert status == 202


def test_a_decoding_failure_inside_the_service_stays_an_internal_error(services, monkeypatch):
    # Given a bug that fails to decode something while handling a well-formed request
    def broken(*_args, **_kwargs):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(services.jobs, "get", broken)
    _, job, _ = post({"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 2})
    status, body, _ = call(get_job, event("GET", f"/api/jobs/{job['id']}", resource="/api/jobs/{id}", path_parameters={"id": job["id"]}))
    # Then it is a 500, not blamed on the request
    assert status == 500 and body["error"]["code"] == "INTERNAL_ERROR"


def test_result_of_a_queued_job_is_409():
    _, job, _ = post({"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 2})
    path = f"/api/jobs/{job['id']}/result"
    status, body, headers = call(get_job_result, event("GET", path, resource="/api/jobs/{id}/result", path_parameters={"id": job["id"]}))
    assert status == 409 and body["error"]["code"] == "JOB_NOT_READY"
    # Then the client is told when to look again
    assert headers["Retry-After"] == "2"


def test_idempotency_key_reuse_with_another_body_is_409():
    first = post({"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 2}, {"Idempotency-Key": "abc"})
    again = post({"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 2}, {"Idempotency-Key": "abc"})
    other = post({"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 3}, {"Idempotency-Key": "abc"})
    assert first[1]["id"] == again[1]["id"]
    assert other[0] == 409 and other[1]["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_a_replay_of_a_finished_job_does_not_ask_to_poll_again(services):
    request = {"sourceUrl": "https://e.com/a.mp4", "start": 1, "end": 2}
    _, job, headers = post(request, {"Idempotency-Key": "finished"})
    assert headers["Retry-After"] == "2"
    # Given the job has finished (here: failed)
    fail_job(services, job["id"], "ClipFailedError", "ffmpeg exited 1")
    # When the same request is replayed, it returns the job without Retry-After
    status, again, headers = post(request, {"Idempotency-Key": "finished"})
    assert status == 202 and again["id"] == job["id"] and again["status"] == "failed"
    assert "Retry-After" not in headers


def test_unknown_route_is_404_not_found():
    status, body, _ = call(get_job, event("GET", "/api/nothing"))
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
