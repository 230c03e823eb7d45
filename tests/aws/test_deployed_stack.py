"""Whole jobs through the stack as deployed: API Gateway's methods, the functions' own environments, the
state machine with its substituted ARNs, the ASR queue's mapping, presigned links, TTL and the stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from clipline.adapters.aws.dynamo_job_repository import DynamoJobRepository
from clipline.aws_sim.deployed_values import StandIns
from clipline.composition import SystemClock
from clipline.media.ffmpeg_binary import find_ffmpeg
from clipline.workflow import LAMBDA_SIZES
from clipline.media.probe import FfmpegProber

from ..conftest import SPEECH_REFERENCE, word_error_rate
from ..doc_examples import examples_in, problems, requests_in, run_example
from ..local.conftest import Client
from ..local.test_job_listing import pages, stored_jobs
from ..local.test_uploads import put
from .conftest import HEARTBEAT_SECONDS, SimulatedStack

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
# What Lambda sets in every function's environment, and the simulation's endpoint.
LAMBDA_RESERVED_VARIABLES = {
    "AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER", "_X_AMZN_TRACE_ID", "PYTHONPATH",
    "PATH", "LANG", "TZ", "HOME", "TMPDIR", "AWS_ENDPOINT_URL",
}  # fmt: skip


def _download(url: str, path: Path) -> Path:
    with urllib.request.urlopen(url, timeout=30) as response:
        path.write_bytes(response.read())
    return path


def _duration(path: Path) -> float:
    return FfmpegProber(find_ffmpeg(None), timeout_seconds=30).probe_file(path).duration_seconds


def _failed_tasks(stack: SimulatedStack, job_id: str) -> list[tuple[str, str]]:
    """(state, error) of every failed task attempt of the job's execution, in order."""
    arn = f"{stack.output('StateMachineArn').replace(':stateMachine:', ':execution:')}:{job_id}"
    state, failed = None, []
    for event in stack.aws("stepfunctions").get_execution_history(executionArn=arn)["events"]:
        state = event.get("stateEnteredEventDetails", {}).get("name", state)
        if event["type"] in ("TaskFailed", "TaskTimedOut"):
            details = event.get("taskFailedEventDetails") or event.get("taskTimedOutEventDetails") or {}
            failed.append((state, details.get("error")))
    return failed


def test_the_deployment_reports_what_it_could_not_simulate(dev_stack):
    # Given the dev stage deployed, Then every function came from the template, and what moto lacks is listed
    functions = dev_stack.summary["functions"]
    clipline = [name for name in functions if name.startswith("clipline-dev-")]
    assert len(clipline) == len(LAMBDA_SIZES)
    # The one other is CDK's bucket deployment provider: deployed, never invoked (the account does its work)
    (provider,) = set(functions) - set(clipline)
    assert "CustomCDKBucketDeployment" in provider
    not_simulated = "\n".join(dev_stack.summary["notSimulated"])
    for kind in ("AWS::ApiGateway::UsagePlan", "AWS::WAFv2::WebACL", "AWS::CloudWatch::Alarm", "AWS::ApiGateway::Stage",
                 "AWS::CloudFront::Distribution", "Custom::CDKBucketDeployment", "MOCK integration"):  # fmt: skip
        assert kind in not_simulated
    # And the state machine runs the deployed definition, its placeholders filled from the created resources
    sfn = dev_stack.aws("stepfunctions")
    definition = sfn.describe_state_machine(stateMachineArn=dev_stack.output("StateMachineArn"))["definition"]
    assert "${" not in definition
    assert dev_stack.function_name("ProbeSource") in definition


def test_a_frame_accurate_clip_then_its_presigned_result(dev_stack, source, tmp_path):
    # Given a job for 10.3 s to 14 s of a source
    created = dev_stack.client.create(source.url("long.mp4"), 10.3, 14)
    assert created.status == 202, created.body
    # When the deployed pipeline runs it
    job = dev_stack.client.wait(created.body["id"], timeout=90)
    # Then it succeeded with a smart cut, and the job is an item of the deployed table
    assert job["status"] == "succeeded", job
    assert job["clip"]["method"] == "smart"
    item = dev_stack.aws("dynamodb").get_item(
        TableName=dev_stack.output("JobsTableName"), Key={"pk": {"S": f"JOB#{job['id']}"}}
    )["Item"]
    assert item["status"]["S"] == "succeeded"
    # And its link is presigned by S3 and downloads over HTTP as the exact range
    result = dev_stack.client.request("GET", f"/api/jobs/{job['id']}/result")
    assert result.status == 200
    (link,) = result.body["artifacts"]
    assert link["url"].startswith(f"{dev_stack.summary['endpointUrl']}/{dev_stack.output('ArtifactsBucketName')}/")
    assert "X-Amz-Signature=" in link["url"]
    clip = _download(link["url"], tmp_path / "clip.mp4")
    assert clip.stat().st_size == job["clip"]["sizeBytes"]
    assert _duration(clip) == pytest.approx(3.7, abs=0.05)
    # And `clipline executions show --aws` reads the execution from the account
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "clipline"), "executions", "show", job["id"], "--aws",
         "--state-machine-arn", dev_stack.output("StateMachineArn")],
        env={**os.environ, "AWS_ENDPOINT_URL": dev_stack.summary["endpointUrl"]},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    for state in ("ProbeSource", "ClipSource", "FinalizeJob"):
        assert state in shown.stdout


def test_each_function_runs_with_its_deployed_environment_and_nothing_of_the_host(dev_stack):
    # Given a warm environment of the API's CreateJob function (an earlier request started it)
    name = dev_stack.function_name("CreateJob")
    assert dev_stack.client.request("POST", "/api/jobs", {}).status == 400
    (pid, *_) = dev_stack.function_processes(name)
    environ = dict(
        entry.split("=", 1) for entry in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry
    )
    # Then it has every variable the function was deployed with, as deployed, but for the AWS endpoints named in
    # them, each replaced by the simulated endpoint standing in for it (the console's origin is the simulated site's)
    deployed = dev_stack.aws("lambda").get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    stand_ins = StandIns(dict(line.split(" -> ") for line in dev_stack.summary["standIns"]))
    assert {key: environ.get(key) for key in deployed} == {key: stand_ins.apply(value) for key, value in deployed.items()}
    assert environ["CLIPLINE_CONSOLE_ORIGINS"] == dev_stack.summary["consoleUrl"].rstrip("/")
    assert environ["CLIPLINE_STATE_MACHINE_ARN"] == dev_stack.output("StateMachineArn")
    # And Lambda's own, but nothing of the process that started the account (pytest's, its credentials)
    assert environ["AWS_LAMBDA_FUNCTION_NAME"] == name and environ["_HANDLER"] == "clipline.handlers.create_job.lambda_handler"
    assert not any(key.startswith("PYTEST") for key in environ)
    assert environ["AWS_ACCESS_KEY_ID"] != os.environ["AWS_ACCESS_KEY_ID"]
    assert environ.keys() <= {*deployed, *LAMBDA_RESERVED_VARIABLES}


def test_a_source_that_fails_ends_the_job_failed_with_its_code(dev_stack, source):
    # Given a job whose source does not exist
    created = dev_stack.client.create(source.url("missing.mp4"), 1, 3)
    # When the pipeline probes it, Then the job fails with the source's own code
    job = dev_stack.client.wait(created.body["id"], timeout=60)
    assert job["status"] == "failed" and job["error"]["code"] == "SOURCE_NOT_FOUND", job
    # And it has no result
    assert dev_stack.client.request("GET", f"/api/jobs/{job['id']}/result").code == "JOB_FAILED"


def test_a_storage_failure_is_retried_by_the_state_machine(dev_stack, source):
    # Given S3 refuses every attempt the clip's upload makes in one invocation
    bucket = dev_stack.output("ArtifactsBucketName")
    dev_stack.inject_faults(service="s3", method="PUT", path_prefix=f"/{bucket}/jobs/", count=5)
    try:
        created = dev_stack.client.create(source.url("long.mp4"), 20, 22)
        # When the pipeline runs, Then the job still succeeds
        job = dev_stack.client.wait(created.body["id"], timeout=120)
    finally:
        rules = dev_stack.clear_faults()
    assert job["status"] == "succeeded", job
    assert rules[0]["matched"] == 5
    # Because ClipSource failed with StorageUnavailableError and its Retry ran it again
    assert _failed_tasks(dev_stack, job["id"]) == [("ClipSource", "StorageUnavailableError")]


def test_api_gateways_own_refusals_are_shaped_by_the_stacks_gateway_responses(dev_stack):
    # Given requests API Gateway refuses itself: no key, a wrong key, a path the API does not have
    for key, path, status, code in ((None, "/api/jobs/x", 403, "FORBIDDEN"), ("wrong", "/api/jobs/x", 403, "FORBIDDEN"),
                                    (dev_stack.summary["apiKey"], "/nowhere", 404, "NOT_FOUND")):  # fmt: skip
        reply = Client(dev_stack.summary["apiUrl"], key).request("GET", path)
        # Then each has clipline's envelope and code, with API Gateway's request id as its correlation id
        assert (reply.status, reply.code) == (status, code), reply.body
        assert reply.body["error"]["correlationId"] == reply.headers["x-amzn-RequestId"]


def test_an_idempotency_key_replay_returns_the_same_job(dev_stack, source):
    url = source.url("long.mp4")
    first = dev_stack.client.create(url, 1, 3, **{"Idempotency-Key": "aws-order-1"})
    again = dev_stack.client.create(url, 1, 3, **{"Idempotency-Key": "aws-order-1"})
    other = dev_stack.client.create(url, 1, 4, **{"Idempotency-Key": "aws-order-1"})
    assert first.status == again.status == 202 and first.body["id"] == again.body["id"]
    assert other.status == 409 and other.code == "IDEMPOTENCY_KEY_REUSED"
    # And only one execution was started for it
    executions = dev_stack.aws("stepfunctions").list_executions(stateMachineArn=dev_stack.output("StateMachineArn"))
    assert [e["name"] for e in executions["executions"]].count(first.body["id"]) == 1


def test_an_expired_job_is_410_and_ttl_removes_its_files_through_the_stream(dev_stack, source):
    # Given a finished job kept for 10 seconds
    reply = dev_stack.client.request(
        "POST", "/api/jobs", {"sourceUrl": source.url("long.mp4"), "start": 2, "end": 4, "retentionSeconds": 10}
    )
    job = dev_stack.client.wait(reply.body["id"], timeout=60)
    assert job["status"] == "succeeded", job
    bucket, prefix = dev_stack.output("ArtifactsBucketName"), f"jobs/{job['id']}/"
    s3 = dev_stack.aws("s3")
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 1
    # When its retention passes, Then the result is gone with 410 (TTL deletes it some seconds later)
    deadline = time.monotonic() + 25
    while (expired := dev_stack.client.request("GET", f"/api/jobs/{job['id']}/result")).status != 410:
        assert time.monotonic() < deadline, expired.body
        time.sleep(0.5)
    assert expired.code == "RESULT_EXPIRED"
    # And TTL deletes the item, whose REMOVE record reaches the cleanup function, which deletes the files
    deadline = time.monotonic() + 30
    while s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"]:
        assert time.monotonic() < deadline, "the expired job's files were not removed"
        time.sleep(0.5)
    table = dev_stack.output("JobsTableName")
    assert "Item" not in dev_stack.aws("dynamodb").get_item(TableName=table, Key={"pk": {"S": f"JOB#{job['id']}"}})
    log = (dev_stack.work_dir / "lambda" / "logs" / f"{dev_stack.function_name('RemoveExpiredArtifacts')}.log").read_text()
    removal = [json.loads(line) for line in log.splitlines() if job["id"] in line and '"removedBy"' in line]
    assert removal and removal[0]["removedBy"] == "ttl"


def test_an_asr_worker_that_stops_heartbeating_ends_in_the_heartbeat_timeout(dev_stack, source):
    # Given every ASR worker environment is frozen as soon as it exists, as a hung Lambda would be,
    # warm ones first
    worker = dev_stack.function_name("TranscribeClip")
    frozen: set[int] = set()

    def freeze_new_workers() -> None:
        for pid in set(dev_stack.function_processes(worker)) - frozen:
            os.kill(pid, signal.SIGSTOP)
            frozen.add(pid)

    freeze_new_workers()
    reply = dev_stack.client.request(
        "POST", "/api/jobs", {"sourceUrl": source.url("long.mp4"), "start": 5, "end": 8, "transcribe": True}
    )
    try:
        deadline = time.monotonic() + 8 * HEARTBEAT_SECONDS + 30
        while True:
            freeze_new_workers()
            job = dev_stack.client.request("GET", f"/api/jobs/{reply.body['id']}").body
            if job["status"] in ("succeeded", "failed"):
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGKILL)
    # Then the job failed with the transcription timeout, after the state's one retry
    assert job["status"] == "failed" and job["error"]["code"] == "TIMEOUT", job
    # (moto names a heartbeat timeout States.Timeout; the definition catches both names.)
    assert [state for state, _ in _failed_tasks(dev_stack, job["id"])] == ["Transcribe", "Transcribe"]
    assert frozen


def test_amazon_transcribe_transcribes_and_the_subtitles_are_burned_in(dev_stack, source, whisper_model, tmp_path):
    # Given the dev stage, whose worker uses Amazon Transcribe, and a clip of speech
    reply = dev_stack.client.request(
        "POST", "/api/jobs",
        {"sourceUrl": source.url("speech.mp4"), "start": 0, "end": 13, "transcribe": True, "language": "en",
         "burnSubtitles": True},
    )  # fmt: skip
    # When the worker uploads the audio, starts a Transcribe job and reads its output back
    job = dev_stack.client.wait(reply.body["id"], timeout=180)
    # Then the job has the transcript's words in every format, and the burned-in clip
    assert job["status"] == "succeeded", job
    assert job["transcript"]["provider"] == "transcribe"
    links = {a["name"]: a["url"] for a in dev_stack.client.request("GET", f"/api/jobs/{job['id']}/result").body["artifacts"]}
    assert set(links) == {"clip", "burned", "srt", "vtt", "txt", "json"}
    text = _download(links["txt"], tmp_path / "transcript.txt").read_text("utf-8")
    assert word_error_rate(SPEECH_REFERENCE.read_text("utf-8"), text) < 0.35, text
    assert _duration(_download(links["burned"], tmp_path / "burned.mp4")) == pytest.approx(13.0, abs=0.1)
    # And the worker cleaned up after Transcribe: no staging objects, no job left
    bucket = dev_stack.output("ArtifactsBucketName")
    staged = dev_stack.aws("s3").list_objects_v2(Bucket=bucket, Prefix="asr-")["KeyCount"]
    assert staged == 0
    assert dev_stack.aws("transcribe").list_transcription_jobs()["TranscriptionJobSummaries"] == []


def test_the_openai_provider_transcribes_and_burns_in_through_its_deployed_secret(openai_stack, openai_api, source, tmp_path):
    # Given the provider's key in the account's Secrets Manager, where the stage says it is
    openai_stack.aws("secretsmanager").create_secret(Name="clipline/openai-api-key", SecretString="sk-simulated")
    # When a job asks for a transcript burned into the clip
    reply = openai_stack.client.request(
        "POST", "/api/jobs",
        {"sourceUrl": source.url("long.mp4"), "start": 30, "end": 36, "transcribe": True, "burnSubtitles": True},
    )  # fmt: skip
    job = openai_stack.client.wait(reply.body["id"], timeout=120)
    # Then it succeeded, the worker called the server with the secret's key, and every artifact links
    assert job["status"] == "succeeded", job
    assert openai_api.requests[-1]["authorization"] == "Bearer sk-simulated"
    links = {a["name"]: a["url"] for a in openai_stack.client.request("GET", f"/api/jobs/{job['id']}/result").body["artifacts"]}
    assert set(links) == {"clip", "burned", "srt", "vtt", "txt", "json"}
    srt = _download(links["srt"], tmp_path / "transcript.srt").read_text("utf-8")
    assert "quick brown fox" in srt
    burned = _download(links["burned"], tmp_path / "burned.mp4")
    assert _duration(burned) == pytest.approx(6.0, abs=0.1)


def test_the_readme_tours_api_examples_answer_as_shown_on_the_aws_host(dev_stack, source, tmp_path):
    # Given the README tour's examples that use the API and its links (the rest are local mode's own pages)
    tour = [example for example in examples_in(README.read_text("utf-8")) if example.heading == "A five-minute local tour"]
    job = dev_stack.client.create(source.url("sample.mp4"), "00:01:00", 70.5)
    assert dev_stack.client.wait(job.body["id"], timeout=90)["status"] == "succeeded"
    links = dev_stack.client.request("GET", f"/api/jobs/{job.body['id']}/result").body["artifacts"]
    sample = source.root / "sample.mp4"
    upload = dev_stack.client.request(
        "POST", "/api/uploads", {"fileName": "talk.mp4", "contentType": "video/mp4", "sizeBytes": sample.stat().st_size}
    ).body
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C", "KEY": dev_stack.summary["apiKey"], "JOB_ID": job.body["id"],
           "CLIP_URL": links[0]["url"], "SAMPLE_FILE": str(sample), "UPLOAD_URL": upload["url"],
           "UPLOAD_KEY": upload["sourceKey"]}  # fmt: skip
    on_the_api = [
        example for example in tour
        if all("/api/" in url or url in (env["CLIP_URL"], env["UPLOAD_URL"]) for _, url in requests_in(example.script, env))
    ]  # fmt: skip
    # The tour's clip, its status and result, its download, an upload (link, PUT to S3, clip), and a refusal
    assert len(on_the_api) == 8, [example.id for example in tour]
    # When each runs with curl against the deployed API, Then it answers as the README shows
    for example in on_the_api:
        outcome = run_example(example, dev_stack.summary["apiUrl"], source.url("sample.mp4"), env, tmp_path)
        assert not problems(example, outcome), f"README line {example.line}: {problems(example, outcome)}"


def _created_with_webhook(stack: SimulatedStack, source, url: str) -> dict:
    created = stack.client.request(
        "POST", "/api/jobs", {"sourceUrl": source.url("long.mp4"), "start": 1, "end": 2, "webhookUrl": url}
    )
    assert created.status == 202, created.body
    return stack.client.wait(created.body["id"], timeout=90)


def _webhook_state(stack: SimulatedStack, job_id: str, state: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        webhook = stack.client.request("GET", f"/api/jobs/{job_id}").body["webhook"]
        if webhook["state"] == state or time.monotonic() > deadline:
            assert webhook["state"] == state, webhook
            return webhook
        time.sleep(0.2)


def _webhook_secret(stack: SimulatedStack, *flags: str) -> str:
    """The key's signing secret, as an operator reads it: the CLI against the account."""
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "clipline"), "keys", "webhook-secret", "--name", "aws-sim", "--aws",
         "--secrets-prefix", stack.output("WebhookSecretsPrefix"), *flags],
        env={**os.environ, "AWS_ENDPOINT_URL": stack.summary["endpointUrl"], "AWS_REGION": stack.summary["region"],
             "AWS_ACCESS_KEY_ID": "operator", "AWS_SECRET_ACCESS_KEY": "operator"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip()


def test_a_webhook_is_retried_through_the_queue_signed_and_redelivered(dev_stack, source, webhook_receiver):
    # Given a receiver that fails its first attempt
    path = "/hooks/retried"
    webhook_receiver.script(500, path=path)
    # When a job with a webhook succeeds in the deployed pipeline
    job = _created_with_webhook(dev_stack, source, f"http://127.0.0.1:{webhook_receiver.port}{path}")
    assert job["status"] == "succeeded", job
    # Then the delivery function retried it from the queue until it was taken
    webhook = _webhook_state(dev_stack, job["id"], "delivered")
    assert [attempt["status"] for attempt in webhook["attempts"]] == [500, 204]
    (first_headers, first_body), (headers, body) = webhook_receiver.received_on(path)
    # And both attempts were one message, signed with the key's secret from Secrets Manager
    assert first_headers["webhook-id"] == headers["webhook-id"] and first_body == body
    secret = _webhook_secret(dev_stack)
    event = Verifier(secret).verify(body, headers)
    assert event["type"] == "job.succeeded" and event["data"]["id"] == job["id"] and event["data"]["status"] == "succeeded"
    # And the secret is in no job record and no execution history
    item = dev_stack.aws("dynamodb").get_item(
        TableName=dev_stack.output("JobsTableName"), Key={"pk": {"S": f"JOB#{job['id']}"}}
    )["Item"]
    sfn = dev_stack.aws("stepfunctions")
    execution_arn = next(
        execution["executionArn"]
        for execution in sfn.list_executions(stateMachineArn=dev_stack.output("StateMachineArn"))["executions"]
        if execution["name"] == job["id"]
    )
    history = sfn.get_execution_history(executionArn=execution_arn)["events"]
    assert secret not in json.dumps(item) and secret not in json.dumps(history, default=str)
    # Nor in any function's logs, the delivery function's own among them
    logs = {path.stem: path.read_text(errors="replace") for path in (dev_stack.work_dir / "lambda" / "logs").glob("*.log")}
    deliveries_log = logs[dev_stack.function_name("DeliverWebhook")]
    assert "webhook delivered" in deliveries_log and "webhook retrying" in deliveries_log
    # And the scheduled retry was a batch item failure, not an error of the function
    assert "BatchProcessingError" not in deliveries_log and "Traceback" not in deliveries_log
    assert not [name for name, text in logs.items() if secret in text]

    # When it is redelivered
    reply = dev_stack.client.request("POST", f"/api/jobs/{job['id']}/webhook/redeliver")
    assert reply.status == 202, reply.body
    # Then the same message comes again
    webhook_receiver.wait_for(3, path=path)
    _, (again_headers, again_body) = webhook_receiver.received_on(path)[1:]
    assert again_headers["webhook-id"] == headers["webhook-id"] and again_body == body
    Verifier(secret).verify(again_body, again_headers)


def test_a_webhook_that_is_never_taken_ends_failed_in_the_dead_letter_queue(dev_stack, source, webhook_receiver):
    # Given a receiver that answers 503 to every attempt of the (compressed) schedule
    path = "/hooks/never"
    webhook_receiver.script(503, 503, 503, path=path)
    # When a job with a webhook ends
    job = _created_with_webhook(dev_stack, source, f"http://127.0.0.1:{webhook_receiver.port}{path}")
    # Then after the whole schedule the webhook failed
    webhook = _webhook_state(dev_stack, job["id"], "failed")
    assert [attempt["status"] for attempt in webhook["attempts"]] == [503, 503, 503]
    assert len(webhook_receiver.received_on(path)) == 3
    # And its message waits in the dead-letter queue, for the alarm and the operator
    deliverer = dev_stack.aws("lambda").get_function_configuration(FunctionName=dev_stack.function_name("DeliverWebhook"))
    dead_letters = deliverer["Environment"]["Variables"]["CLIPLINE_WEBHOOK_DEAD_LETTER_QUEUE_URL"]
    sqs = dev_stack.aws("sqs")
    kept = []
    deadline = time.monotonic() + 20
    while not kept and time.monotonic() < deadline:
        kept = [
            json.loads(message["Body"])
            for message in sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
        ]
    assert [message["jobId"] for message in kept] == [job["id"]], kept


def test_a_webhook_url_that_is_not_http_is_refused_at_creation_and_nothing_is_created(dev_stack, source):
    # The test stack allows loopback receivers (a private address is refused in local mode's strict tests)
    table = dev_stack.output("JobsTableName")
    before = dev_stack.aws("dynamodb").scan(TableName=table, Select="COUNT")["Count"]
    reply = dev_stack.client.request(
        "POST", "/api/jobs", {"sourceUrl": source.url("long.mp4"), "start": 1, "end": 2, "webhookUrl": "ftp://127.0.0.1/x"}
    )
    assert (reply.status, reply.code) == (400, "INVALID_WEBHOOK_URL"), reply.body
    assert dev_stack.aws("dynamodb").scan(TableName=table, Select="COUNT")["Count"] == before


# --- listing ---------------------------------------------------------------------------------------


def test_250_jobs_list_newest_first_through_the_owner_index_page_by_page(dev_stack, source):
    """The deployed ListJobs function queries the table's ByOwner index, under its read-only role."""
    # Given a key of its own, 250 of its jobs in the deployed table, and one more made through the API
    key = dev_stack.aws("apigateway").create_api_key(name="listing", enabled=True, value="listing-" + "k" * 32)
    client = Client(dev_stack.client.base_url, key["value"])
    repository = DynamoJobRepository(dev_stack.aws("dynamodb"), dev_stack.output("JobsTableName"), SystemClock().now)
    stored = stored_jobs(repository, key["id"], 250, SystemClock().now() - timedelta(seconds=1))
    created = client.create(source.url("long.mp4"), 1, 2)
    assert created.status == 202, created.body
    # Ended, so that only the stored jobs are still queued
    assert client.wait(created.body["id"])["status"] == "succeeded"
    # When it pages through its list, 100 at a time, then only its queued jobs
    listed = pages(client)
    # Then it sees its 251 jobs, newest first, each once
    assert [len(page) for page in listed] == [100, 100, 51]
    assert [job_id for page in listed for job_id in page] == [created.body["id"], *reversed(stored)]
    queued = [job_id for page in pages(client, "status=queued&limit=60") for job_id in page]
    assert queued == list(reversed(stored))
    # And a cursor that is not one is refused
    reply = client.request("GET", "/api/jobs?cursor=bm9wZQ")
    assert (reply.status, reply.code) == (400, "INVALID_CURSOR")


# --- cancel and delete -----------------------------------------------------------------------------


def _stored_keys(stack: SimulatedStack, job_id: str) -> list[str]:
    listed = stack.aws("s3").list_objects_v2(Bucket=stack.output("ArtifactsBucketName"), Prefix=f"jobs/{job_id}/")
    return [item["Key"] for item in listed.get("Contents", [])]


def _ffmpeg_of(stack: SimulatedStack, function: str) -> list[int]:
    """The function's ffmpeg children: they inherit its environment, by which function_processes finds them."""
    return [pid for pid in stack.function_processes(stack.function_name(function))
            if "ffmpeg" in Path(f"/proc/{pid}/comm").read_text()]  # fmt: skip


def test_a_job_cancelled_while_it_burns_in_stops_its_execution_its_lambda_and_keeps_no_file(dev_stack, source):
    subtitles = "".join(f"{n + 1}\n00:00:{n:02},000 --> 00:00:{n:02},900\nline {n}\n\n" for n in range(50))
    body = {"sourceUrl": source.url("long.mp4"), "start": 0, "end": 100, "burnSubtitles": True,
            "subtitles": {"srt": subtitles}}  # fmt: skip
    job_id = dev_stack.client.request("POST", "/api/jobs", body).body["id"]
    deadline = time.monotonic() + 120
    while not _ffmpeg_of(dev_stack, "BurnIn"):
        job = dev_stack.client.request("GET", f"/api/jobs/{job_id}").body
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.1)
    # When it is cancelled through the deployed DeleteJob function
    reply = dev_stack.client.request("DELETE", f"/api/jobs/{job_id}")
    assert reply.status == 202, reply.body
    assert (reply.body["status"], reply.body["events"][-1]["stage"]) == ("cancelled", "burnIn")
    # Then its execution is aborted, and the BurnIn Lambda's ffmpeg ends at its next progress report
    execution_arn = dev_stack.output("StateMachineArn").replace(":stateMachine:", ":execution:") + f":{job_id}"
    assert dev_stack.aws("stepfunctions").describe_execution(executionArn=execution_arn)["status"] == "ABORTED"
    deadline = time.monotonic() + 10
    while _ffmpeg_of(dev_stack, "BurnIn") or _stored_keys(dev_stack, job_id):
        assert time.monotonic() < deadline, (_ffmpeg_of(dev_stack, "BurnIn"), _stored_keys(dev_stack, job_id))
        time.sleep(0.2)
    # And the job stays cancelled, with no result; asking again changes nothing
    time.sleep(2)
    assert dev_stack.client.request("GET", f"/api/jobs/{job_id}").body["status"] == "cancelled"
    assert _stored_keys(dev_stack, job_id) == []
    result = dev_stack.client.request("GET", f"/api/jobs/{job_id}/result")
    assert (result.status, result.code) == (409, "JOB_CANCELLED")
    assert dev_stack.client.request("DELETE", f"/api/jobs/{job_id}").status == 204


def test_deleting_an_ended_job_removes_its_objects_and_leaves_its_record_deleted(dev_stack, source):
    job_id = dev_stack.client.create(source.url("long.mp4"), 1, 3).body["id"]
    assert dev_stack.client.wait(job_id)["status"] == "succeeded"
    assert _stored_keys(dev_stack, job_id)
    reply = dev_stack.client.request("DELETE", f"/api/jobs/{job_id}")
    assert reply.status == 204, reply.body
    assert _stored_keys(dev_stack, job_id) == []
    job = dev_stack.client.request("GET", f"/api/jobs/{job_id}").body
    assert (job["status"], job["resultKeys"]) == ("deleted", {})
    result = dev_stack.client.request("GET", f"/api/jobs/{job_id}/result")
    assert (result.status, result.code) == (410, "JOB_DELETED")
    # Another key's job is not found, and left alone
    key = dev_stack.aws("apigateway").create_api_key(name="stranger", enabled=True, value="stranger-" + "k" * 32)
    other = Client(dev_stack.client.base_url, key["value"]).request("DELETE", f"/api/jobs/{job_id}")
    assert (other.status, other.code) == (404, "JOB_NOT_FOUND")


# --- uploads ---------------------------------------------------------------------------------------


def test_an_upload_to_s3_through_its_presigned_put_then_a_clip_of_it(dev_stack, media_dir):
    """The deployed CreateUpload presigns the PUT; CreateJob checks the object; the steps read it from S3 directly."""
    sample = (media_dir / "speech.mp4").read_bytes()
    reply = dev_stack.client.request(
        "POST", "/api/uploads", {"fileName": "talk.mp4", "contentType": "video/mp4", "sizeBytes": len(sample)}
    )
    assert reply.status == 201, reply.body
    link = reply.body
    assert "X-Amz-Signature=" in link["url"] and "content-length" in link["url"].lower()
    assert put(link["url"], sample, link["headers"])[0] == 200
    head = dev_stack.aws("s3").head_object(Bucket=dev_stack.output("ArtifactsBucketName"), Key=link["sourceKey"])
    assert (head["ContentLength"], head["ContentType"]) == (len(sample), "video/mp4")
    created = dev_stack.client.request("POST", "/api/jobs", {"sourceKey": link["sourceKey"], "start": 2, "end": 5})
    assert created.status == 202, created.body
    job = dev_stack.client.wait(created.body["id"])
    assert job["status"] == "succeeded", job
    assert abs(job["clip"]["durationSeconds"] - 3.0) < 0.05
    # Another key's job may not name it
    key = dev_stack.aws("apigateway").create_api_key(name="uploader", enabled=True, value="uploader-" + "k" * 32)
    other = Client(dev_stack.client.base_url, key["value"]).request(
        "POST", "/api/jobs", {"sourceKey": link["sourceKey"], "start": 0, "end": 1}
    )
    assert (other.status, other.code) == (404, "UPLOAD_NOT_FOUND")


@pytest.mark.parametrize(
    ("declared_type", "sent_type", "extra_bytes"), [("video/mp4", "video/mp4", 100), ("video/mp4", "video/webm", 0)],
    ids=["oversize", "wrong-type"],
)  # fmt: skip
def test_an_upload_unlike_its_declaration_is_refused_and_leaves_no_object(dev_stack, media_dir, declared_type, sent_type, extra_bytes):
    sample = (media_dir / "silent.mp4").read_bytes()
    declared = len(sample) - extra_bytes
    link = dev_stack.client.request(
        "POST", "/api/uploads", {"fileName": "a.mp4", "contentType": declared_type, "sizeBytes": declared}
    ).body
    status, _ = put(link["url"], sample, {"Content-Type": sent_type, "Content-Length": str(len(sample))})
    bucket = dev_stack.output("ArtifactsBucketName")
    if status == 200:
        # The simulated S3 does not check presigned headers, as S3 does; creating a job checks the object instead
        reply = dev_stack.client.request("POST", "/api/jobs", {"sourceKey": link["sourceKey"], "start": 0, "end": 1})
        assert (reply.status, reply.code) == (409, "UPLOAD_MISMATCH"), reply.body
    else:
        assert status == 403
    listed = dev_stack.aws("s3").list_objects_v2(Bucket=bucket, Prefix=f"uploads/{link['uploadId']}/")
    assert listed.get("KeyCount", 0) == 0
    again = dev_stack.client.request("POST", "/api/jobs", {"sourceKey": link["sourceKey"], "start": 0, "end": 1})
    assert (again.status, again.code) == (409, "UPLOAD_INCOMPLETE")


# --- the Python client -----------------------------------------------------------------------------


def test_the_python_client_uploads_clips_lists_downloads_and_cancels_on_the_aws_host(dev_stack, source, media_dir, tmp_path):
    """clipline.client against API Gateway and S3 as deployed: the same calls as against local mode."""
    from clipline.client import Client

    key = dev_stack.aws("apigateway").create_api_key(name="client", enabled=True, value="client-" + "k" * 32)
    client = Client(dev_stack.client.base_url, key["value"])
    sent: list[int] = []
    upload = client.upload_file(media_dir / "speech.mp4", on_progress=lambda done, total: sent.append(done))
    assert sent[-1] == (media_dir / "speech.mp4").stat().st_size
    job = client.wait(client.create_job(upload, 1, 3).id, timeout=120, poll_interval=0.5)
    assert job.status.value == "succeeded", job.error
    saved = client.download(job.id, tmp_path / "out")
    assert saved["clip"].stat().st_size == job.clip.size_bytes
    assert abs(_duration(saved["clip"]) - 2.0) < 0.05
    running = client.create_job(source.url("long.mp4"), 0, 100, burn_subtitles=True,
                                subtitles="1\n00:00:00,000 --> 00:00:05,000\nhello\n")  # fmt: skip
    assert [listed.id for listed in client.list_jobs(page_size=1)] == [running.id, job.id]
    cancelled = client.cancel(running.id)
    assert cancelled is not None and cancelled.status.value == "cancelled"
    assert client.cancel(running.id) is None


# -- the web console, from its CloudFront site, calling the API and S3 across origins


def _header(url: str, name: str, method: str = "GET", **headers: str) -> str | None:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.headers.get(name)
    except urllib.error.HTTPError as error:
        return error.headers.get(name)


def test_the_console_site_has_its_headers_and_the_api_answers_only_its_origin(dev_stack):
    site = dev_stack.summary["consoleUrl"]
    origin = site.rstrip("/")
    policy = _header(site, "Content-Security-Policy")
    # The policy as deployed: the API and the artifact links are the only other origins the page may call
    assert f"connect-src 'self' {dev_stack.client.base_url} {dev_stack.summary['endpointUrl']}" in policy
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert _header(site, "X-Content-Type-Options") == "nosniff"
    assert _header(site, "X-Frame-Options") == "DENY"
    with urllib.request.urlopen(site + "config.json", timeout=30) as config:
        assert json.load(config) == {"apiUrl": dev_stack.client.base_url + "/"}
    # A preflight is API Gateway's own answer, for the console's origin, without a key
    jobs = dev_stack.client.base_url + "/api/jobs"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    assert _header(jobs, "Access-Control-Allow-Origin", "OPTIONS", **preflight) == origin
    assert "x-api-key" in _header(jobs, "Access-Control-Allow-Headers", "OPTIONS", **preflight).lower()
    # The functions' answers and API Gateway's refusals carry it for that origin, and for no other
    key = {"x-api-key": dev_stack.summary["apiKey"]}
    assert _header(jobs, "Access-Control-Allow-Origin", Origin=origin, **key) == origin
    assert _header(jobs, "Access-Control-Allow-Origin", Origin="https://elsewhere.example", **key) is None
    assert _header(jobs, "Access-Control-Allow-Origin", Origin=origin, **{"x-api-key": "wrong"}) == origin


# A whole person's session: an upload, a transcription and burn-in, a cancel; longer than the suite's 300 s bound allows.
@pytest.mark.timeout(600)
def test_the_console_uploads_clips_subtitles_plays_downloads_and_cancels_on_the_aws_host(
    dev_stack, source, media_dir, open_console, whisper_model, tmp_path
):

    console = open_console(dev_stack.summary["consoleUrl"])
    console.enter_key(dev_stack.summary["apiKey"])
    # Given a file chosen from disk, previewed before it is sent anywhere
    console.page.set_input_files("#source-file", str(media_dir / "speech.mp4"))
    duration = console.wait_for("() => { const v = document.getElementById('player'); return v.duration > 0 ? v.duration : null }")
    assert duration == pytest.approx(13.5, abs=0.1)
    assert console.page.evaluate("() => document.getElementById('player').currentSrc.startsWith('blob:')")
    # When the range is set with the player and a subtitled job is created: the file goes to S3 first
    console.seek_player(0.5)
    console.page.click("#set-in")
    console.seek_player(12.5)
    console.page.click("#set-out")
    console.choose(transcribe=True, burn_subtitles=True)
    job_id = console.create_job()
    assert console.wait_for_status(timeout=240) == "succeeded", console.page.text_content("#job-error")
    job = dev_stack.client.request("GET", f"/api/jobs/{job_id}").body
    assert job["request"]["sourceKey"] and (job["request"]["startSeconds"], job["request"]["endSeconds"]) == (0.5, 12.5)
    assert job["transcript"]["provider"] == "transcribe"
    # Then the clip plays from its presigned link, its subtitles fetched from S3 across origins
    console.wait_for("() => document.querySelectorAll('#transcript li.cue').length || null", timeout=30)
    assert dev_stack.summary["endpointUrl"] in console.page.evaluate("() => document.getElementById('result-clip').currentSrc")
    cues = console.page.evaluate(
        "() => Array.from(document.getElementById('result-clip').textTracks[0].cues, c => c.startTime)"
    )
    assert len(cues) >= 2
    console.seek("result-clip", 0)
    console.page.locator("#transcript li.cue button").last.click()
    console.wait_for(
        "(start) => { const t = document.getElementById('result-clip').currentTime;"
        " return t >= start - 0.05 && t < start + 1.5 ? t : null }",
        cues[-1],
    )
    assert console.page.is_visible("#result-burned")
    # And the burned clip downloads, byte for byte the stored object
    with console.page.expect_download() as download:
        console.page.click("#artifact-links a[data-artifact='burned']")
    saved = tmp_path / "burned.mp4"
    download.value.save_as(saved)
    stored = dev_stack.aws("s3").get_object(Bucket=dev_stack.output("ArtifactsBucketName"), Key=job["resultKeys"]["burned"])
    assert saved.read_bytes() == stored["Body"].read()
    console.screenshot("aws-results")
    # And a second job, from a URL, is cancelled while it runs
    console.page.fill("#source-url", source.url("long.mp4"))
    console.page.click("#load-source")
    console.type_range("00:00:00.000", "00:01:40.000")
    # (transcribing and burning in 100 s keeps it running well past the click)
    console.choose(transcribe=True, burn_subtitles=True)
    second = console.create_job()
    console.page.click("#cancel-job")
    assert console.wait_for_status(timeout=60) == "cancelled"
    assert dev_stack.client.request("GET", f"/api/jobs/{second}").body["status"] == "cancelled"
    assert console.problems == []


def test_the_console_marks_a_retried_state_and_shows_a_failed_jobs_code(dev_stack, source, open_console):

    console = open_console(dev_stack.summary["consoleUrl"])
    console.enter_key(dev_stack.summary["apiKey"])
    # Given S3 refuses the clip's first uploads, so the state machine retries ClipSource
    bucket = dev_stack.output("ArtifactsBucketName")
    dev_stack.inject_faults(service="s3", method="PUT", path_prefix=f"/{bucket}/jobs/", count=5)
    try:
        console.load_source(source.url("long.mp4"))
        console.type_range("00:00:20.000", "00:00:22.000")
        console.choose()
        console.create_job()
        # When it runs to success, Then the job's timeline marks the retried state with its attempt
        assert console.wait_for_status(timeout=120) == "succeeded"
    finally:
        dev_stack.clear_faults()
    retried = console.page.locator("#job-events li.job-event.retry").all_text_contents()
    assert any("ClipSource" in text and "attempt 2" in text for text in retried), retried
    console.screenshot("aws-retried")
    # And a job whose source is missing ends failed, its code and message shown in the panel
    console.page.fill("#source-url", source.url("missing.mp4"))
    console.page.click("#load-source")
    console.type_range("00:00:01.000", "00:00:02.000")
    console.create_job()
    assert console.wait_for_status(timeout=60) == "failed"
    assert "SOURCE_NOT_FOUND" in console.page.text_content("#job-error")
    assert console.page.locator("#job-events li.job-event.failed").count() >= 1
    assert console.problems == []
