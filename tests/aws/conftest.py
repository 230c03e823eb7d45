"""The AWS host, proven: the synthesized stack deployed into a simulated account by ``clipline serve --aws-sim``.

One synthesis per run, of the stages under test, with the runtime settings these
tests need (sources on loopback, a short heartbeat). Each stage is then deployed
by the command a user runs, in a process of its own, and driven over HTTP: the
REST API, the simulated AWS endpoint (boto3, as the AWS CLI would), and presigned
links. Nothing reaches the deployed functions from this process's environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from clipline.local.media_server import MediaServer

from ..conftest import offline_whisper_model
from ..local.conftest import Client
from ..openai_server import TranscriptionApi
from ..webhook_receiver import Receiver

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_TIMEOUT_SECONDS = 180
# Short enough for the heartbeat test to end in seconds; three beats per period keep a busy worker alive.
HEARTBEAT_SECONDS = 6
# Three attempts a second or two apart: the delivery queue's visibility carries each retry.
WEBHOOK_RETRY_SCHEDULE = "1,2"
# The expiry test reads the 410 before TTL deletes the job, as it would in AWS, where TTL takes days.
TTL_DELAY_SECONDS = 8


@dataclass
class SimulatedStack:
    summary: dict[str, Any]
    process: subprocess.Popen
    work_dir: Path
    client: Client

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.summary["endpointUrl"],
            region_name=self.summary["region"],
            aws_access_key_id="tests",
            aws_secret_access_key="tests",
        )

    def output(self, name: str) -> str:
        return self.summary["outputs"][name]

    def function_name(self, suffix: str) -> str:
        return next(name for name in self.summary["functions"] if name.endswith(f"-{suffix}"))

    def inject_faults(self, **rule: Any) -> None:
        request = urllib.request.Request(
            self.summary["endpointUrl"] + "/_sim/faults", data=json.dumps(rule).encode(), method="POST"
        )
        urllib.request.urlopen(request, timeout=10).read()

    def clear_faults(self) -> list[dict]:
        """Remove every fault rule; the rules as they were, with how often each matched."""
        request = urllib.request.Request(self.summary["endpointUrl"] + "/_sim/faults", method="DELETE")
        return json.loads(urllib.request.urlopen(request, timeout=10).read())

    def function_processes(self, function_name: str) -> list[int]:
        """Pids of the function's execution environments, found as an operator would: by their environment."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"AWS_LAMBDA_FUNCTION_NAME={function_name}".encode() in environ and str(self.work_dir).encode() in (
                entry / "cwd"
            ).resolve().as_posix().encode():
                pids.append(int(entry.name))
        return pids


@pytest.fixture(scope="session")
def source(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    """The session's media, and the README tour's ``sample.mp4`` (the long one), on one server whose port is allowed."""
    served = tmp_path_factory.mktemp("aws-media")
    for path in media_dir.iterdir():
        (served / path.name).symlink_to(path)
    (served / "sample.mp4").symlink_to(media_dir / "long.mp4")
    with MediaServer(served) as server:
        yield server


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[Receiver]:
    """One receiver for the session's webhooks, on a port the stack allows; each test posts to a path of its own."""
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def openai_api() -> Iterator[TranscriptionApi]:
    with TranscriptionApi() as server:
        yield server


@pytest.fixture(scope="session")
def assembly(
    tmp_path_factory: pytest.TempPathFactory, source: MediaServer, openai_api: TranscriptionApi, webhook_receiver: Receiver
) -> Path:
    """``cdk synth`` of the dev (Amazon Transcribe) and openai stages, as the CDK CLI runs the app."""
    from infra.app import build_app

    context = json.loads((REPO_ROOT / "cdk.json").read_text("utf-8"))["context"]
    port = source.base_url.rsplit(":", 1)[1]
    runtime = {
        "allow_private_sources": True,
        "source_ports": f"80,443,{port},{webhook_receiver.port}",
        # Seconds, not hours: the retry tests see a whole schedule run out.
        "webhook_retry_schedule": WEBHOOK_RETRY_SCHEDULE,
    }
    for stage in ("dev", "openai"):
        context["stages"][stage].update({"settings": runtime, "asr_heartbeat_seconds": HEARTBEAT_SECONDS})
    context["stages"]["openai"]["openai_base_url"] = openai_api.url
    outdir = tmp_path_factory.mktemp("cdk.out")
    saved = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith(("AWS_", "CDK_"))}
    os.environ.update({"AWS_ACCESS_KEY_ID": "synth", "AWS_SECRET_ACCESS_KEY": "synth", "AWS_REGION": "us-east-1"})
    try:
        build_app(context, str(outdir), stages=("dev", "openai")).synth()
    finally:
        for key in [key for key in os.environ if key.startswith(("AWS_", "CDK_"))]:
            del os.environ[key]
        os.environ.update(saved)
    return outdir


def _deploy(assembly: Path, stage: str, work_dir: Path) -> SimulatedStack:
    ready = work_dir / "ready.json"
    model = offline_whisper_model()
    # The simulated Amazon Transcribe recognizes with the offline model; without it, its jobs fail.
    recognizer = ["--transcribe-model", model] if model else []
    log = (work_dir / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "clipline"), "serve", "--aws-sim", "--assembly", str(assembly), "--stage", stage,
         "--port", "0", "--ready-file", str(ready), "--work-dir", str(work_dir), "--ttl-interval", "1", "--ttl-delay", str(TTL_DELAY_SECONDS), *recognizer],
        cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + DEPLOY_TIMEOUT_SECONDS
    while not ready.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"clipline serve --aws-sim did not come up:\n{(work_dir / 'serve.log').read_text()[-4000:]}")
        time.sleep(0.2)
    summary = json.loads(ready.read_text("utf-8"))
    return SimulatedStack(summary, process, work_dir, Client(summary["apiUrl"], summary["apiKey"]))


def _stop(stack: SimulatedStack) -> None:
    stack.process.send_signal(signal.SIGTERM)
    try:
        stack.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(stack.process.pid, signal.SIGKILL)
        stack.process.wait()


@pytest.fixture(scope="session")
def dev_stack(assembly: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedStack]:
    stack = _deploy(assembly, "dev", tmp_path_factory.mktemp("aws-sim-dev"))
    yield stack
    _stop(stack)


@pytest.fixture(scope="session")
def openai_stack(assembly: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedStack]:
    stack = _deploy(assembly, "openai", tmp_path_factory.mktemp("aws-sim-openai"))
    yield stack
    _stop(stack)
