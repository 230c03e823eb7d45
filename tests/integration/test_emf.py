"""Handlers invoked as Lambda print CloudWatch EMF that CloudWatch would accept."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from clipline.composition import install
from clipline.domain.jobs import ClipRequest, new_job
from clipline.local import lambda_runtime
from clipline.metric_catalog import METRICS
from clipline.observability import PowertoolsTelemetry
from tests.fakes import CapturedLogs, FixedClock, fake_services


@pytest.fixture
def installed():
    clock = FixedClock()
    services = fake_services(clock, telemetry=PowertoolsTelemetry())
    install(services)
    yield services, clock
    install(None)


def stored_job(services, created_at, correlation_id: str):
    """A queued job in the store, created at ``created_at``."""
    job = new_job(
        ClipRequest(source_url="https://example.com/a.mp4", start_seconds=0, end_seconds=5),
        owner="key-1",
        correlation_id=correlation_id,
        now=created_at,
        retention=timedelta(days=1),
    )
    services.jobs.create(job, None)
    return job


def emf_documents(output: str) -> list[dict]:
    documents = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [document for document in documents if "_aws" in document]


def assert_valid_emf(document: dict) -> None:
    """The structure CloudWatch requires of an embedded metric format document."""
    directive = document["_aws"]
    assert isinstance(directive["Timestamp"], int)
    (metrics_directive,) = directive["CloudWatchMetrics"]
    assert metrics_directive["Namespace"] == "clipline"
    for dimension_set in metrics_directive["Dimensions"]:
        assert all(name in document for name in dimension_set)
    for metric in metrics_directive["Metrics"]:
        definition = METRICS[metric["Name"]]
        assert metric["Unit"] == definition.unit.value
        assert metric["Name"] in document
        assert set(metrics_directive["Dimensions"][0]) == {"service", *definition.dimensions}


def test_the_failure_handler_prints_emf_for_the_failed_job(installed, capsys):
    services, clock = installed
    # Given a job created five seconds ago
    job = stored_job(services, clock.now() - timedelta(seconds=5), "cid-emf")
    capsys.readouterr()

    # When the state machine's Catch invokes FailJob for it, as Lambda would
    lambda_runtime.invoke(
        "clipline.handlers.fail_job",
        {"jobId": job.id, "correlationId": "cid-emf", "error": "ClipTimeoutError", "cause": None},
    )

    # Then the output holds EMF for the failure count and the job's duration, with their dimensions
    documents = emf_documents(capsys.readouterr().out)
    for document in documents:
        assert_valid_emf(document)
    by_metric = {name: document for document in documents for name in METRICS if name in document}
    assert by_metric["JobsFailed"]["errorCode"] == "CLIP_TIMEOUT"
    assert by_metric["JobsFailed"]["JobsFailed"] == [1.0]
    assert by_metric["JobDuration"]["outcome"] == "failed"
    assert by_metric["JobDuration"]["JobDuration"] == [pytest.approx(5.0)]
    assert by_metric["JobDuration"]["service"] == "clipline"


def test_an_api_handler_prints_emf_for_the_request(installed, capsys):
    # Given a status request for a job that does not exist, as API Gateway sends it
    event = {
        "resource": "/api/jobs/{id}",
        "path": "/api/jobs/" + "0" * 32,
        "httpMethod": "GET",
        "headers": {"x-correlation-id": "cid-api"},
        "pathParameters": {"id": "0" * 32},
        "requestContext": {"requestId": "r-1", "identity": {"apiKeyId": "key-1"}, "stage": "prod"},
        "body": None,
    }
    capsys.readouterr()
    # When the get-job Lambda answers it
    response = lambda_runtime.invoke("clipline.handlers.get_job", event)
    # Then it answered 404 and counted the request by route and status class
    assert response["statusCode"] == 404
    (document,) = [d for d in emf_documents(capsys.readouterr().out) if "ApiRequests" in d]
    assert_valid_emf(document)
    assert (document["route"], document["statusClass"], document["ApiRequests"]) == ("/api/jobs/{id}", "4xx", [1.0])


def test_a_metric_outside_the_catalog_is_refused():
    telemetry = PowertoolsTelemetry()
    with pytest.raises(ValueError, match="not in the catalog"):
        telemetry.count("JobsCreatd")
    with pytest.raises(ValueError, match="dimensions"):
        telemetry.count("JobsFailed", jobId="abc")
    with pytest.raises(ValueError, match="histogram"):
        telemetry.count("JobDuration", outcome="failed")


def test_emf_can_be_silenced_while_the_mirror_keeps_counting(monkeypatch, capsys):
    # Given metrics disabled the Powertools way, and a mirror such as local mode's /metrics
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    recorded = []

    class Mirror:
        def record(self, definition, value, dimensions):
            recorded.append((definition.name, value, dimensions))

    # When a metric is emitted
    PowertoolsTelemetry(mirror=Mirror()).count("JobsFailed", errorCode="CLIP_TIMEOUT")
    # Then nothing is printed, and the mirror still has it
    assert emf_documents(capsys.readouterr().out) == []
    assert recorded == [("JobsFailed", 1, {"errorCode": "CLIP_TIMEOUT"})]


def test_a_failure_is_logged_once_even_when_fail_job_is_retried(installed):
    services, clock = installed
    # Given a job
    job = stored_job(services, clock.now(), "cid-once")
    event = {"jobId": job.id, "correlationId": "cid-once", "error": "SourceNotFoundError", "cause": None}
    # When the state machine runs FailJob twice for it (its Retry after a lost response)
    with CapturedLogs() as logs:
        lambda_runtime.invoke("clipline.handlers.fail_job", event)
        lambda_runtime.invoke("clipline.handlers.fail_job", event)
    # Then one line reports the failure, with the job's ids and code
    (line,) = [line for line in logs.lines() if line["message"] == "job failed"]
    assert (line["jobId"], line["correlationId"], line["errorCode"]) == (job.id, "cid-once", "SOURCE_NOT_FOUND")


def test_a_job_the_global_timeout_ended_is_logged_with_its_correlation_id(installed):
    services, clock = installed
    # Given a job
    job = stored_job(services, clock.now(), "cid-timeout")
    # When EventBridge reports its execution timed out
    with CapturedLogs() as logs:
        lambda_runtime.invoke(
            "clipline.handlers.record_execution_end",
            {"detail": {"executionArn": "arn", "name": job.id, "status": "TIMED_OUT"}},
        )
    # Then the failure is logged once, under the job's correlation id
    (line,) = [line for line in logs.lines() if line["message"] == "job failed"]
    assert (line["correlationId"], line["errorCode"]) == ("cid-timeout", "JOB_TIMEOUT")
