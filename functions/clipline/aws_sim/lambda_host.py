"""Lambda's execution environments for the deployed functions: a process each, under the real runtime client.

Each environment is a Python process running ``awslambdaric`` (the Lambda runtime
interface client AWS ships) with the function's handler, polling a Lambda Runtime
API that this module serves on loopback. Its environment is what Lambda gives a
function: the function's own variables as deployed, the reserved ``AWS_*`` and
``LAMBDA_*`` ones, and nothing of the host process. An environment serves one
invocation at a time and is kept warm for the next; concurrent invocations get
environments of their own, as in Lambda.

The deployed zips (the function's code and its layers) are unpacked from what the
simulated account stores. Two things differ from Lambda, by necessity:

- Layers unpack under a folder per layer, not ``/opt``: a variable whose value
  names a path under ``/opt`` is pointed at the layer holding that path, and each
  layer's ``bin`` is on ``PATH``.
- The interpreter is this machine's, with the packages installed beside it; the
  dependencies layer is built for Lambda's Python and is not put on ``sys.path``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

_RUNTIME_API_PREFIX = "/2018-06-01/runtime"
LAMBDA_MOUNT = "/opt"
# How long an idle environment waits for its next invocation before it is shut down.
IDLE_ENVIRONMENT_SECONDS = 600.0


@dataclass(frozen=True)
class FunctionCode:
    """What one deployed function runs: its code and layers as zips, its handler, limits and variables."""

    name: str
    arn: str
    # Changes whenever the code or configuration does, so a warm environment is never of an older one.
    revision: str
    handler: str
    code_zip: bytes
    layer_zips: tuple[bytes, ...]
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    region: str
    # Extra variables from the simulation itself (the endpoint of the simulated account).
    simulation_environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InvocationResult:
    """The function's answer: its payload, and the error type when it failed (Lambda's FunctionError)."""

    payload: bytes
    error_type: str | None = None

    @property
    def failed(self) -> bool:
        return self.error_type is not None


@dataclass
class _Invocation:
    request_id: str
    event: bytes
    deadline_ms: int
    invoked_arn: str
    done: threading.Event = field(default_factory=threading.Event)
    result: InvocationResult | None = None

    def finish(self, result: InvocationResult) -> None:
        if self.result is None:
            self.result = result
            self.done.set()


def _error(error_type: str, message: str) -> InvocationResult:
    return InvocationResult(json.dumps({"errorType": error_type, "errorMessage": message}).encode(), error_type)


class _RuntimeApi(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A runtime killed at a timeout or at shutdown drops its connection; that is not news.
        pass

    def __init__(self, environment: "ExecutionEnvironment") -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeApiHandler)
        self.environment = environment


class _RuntimeApiHandler(BaseHTTPRequestHandler):
    """The Lambda Runtime API: ``invocation/next``, ``…/response``, ``…/error`` and ``init/error``."""

    server: _RuntimeApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's naming
        if self.path != f"{_RUNTIME_API_PREFIX}/invocation/next":
            return self._answer(404)
        invocation = self.server.environment.next_invocation()
        if invocation is None:
            # The environment is shutting down; the runtime client exits on an error here.
            return self._answer(500)
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", invocation.request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(invocation.deadline_ms))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", invocation.invoked_arn)
        self.send_header("Lambda-Runtime-Trace-Id", _trace_header())
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(invocation.event)))
        self.end_headers()
        self.wfile.write(invocation.event)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        environment = self.server.environment
        if self.path == f"{_RUNTIME_API_PREFIX}/init/error":
            environment.init_failed(_error_result(body, self.headers))
            return self._answer(202)
        parts = self.path.removeprefix(f"{_RUNTIME_API_PREFIX}/invocation/").split("/")
        if len(parts) != 2 or parts[1] not in ("response", "error"):
            return self._answer(404)
        result = InvocationResult(body) if parts[1] == "response" else _error_result(body, self.headers)
        environment.finish(parts[0], result)
        self._answer(202)

    def _answer(self, status: int) -> None:
        payload = b'{"status":"OK"}' if status == 202 else b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _error_result(body: bytes, headers: object) -> InvocationResult:
    try:
        error_type = json.loads(body).get("errorType")
    except (ValueError, AttributeError):
        error_type = None
    return InvocationResult(body, error_type or headers.get("Lambda-Runtime-Function-Error-Type") or "Unhandled")  # type: ignore[attr-defined]


def _trace_header() -> str:
    # Not sampled: there is no X-Ray here, but Powertools' tracer needs a trace to attach to.
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"


class ExecutionEnvironment:
    """One warm process of one function, serving one invocation at a time."""

    def __init__(self, code: FunctionCode, task_root: Path, layer_roots: list[Path], log_path: Path) -> None:
        self.code = code
        self._next: queue.Queue[_Invocation | None] = queue.Queue()
        self._current: _Invocation | None = None
        self._lock = threading.Lock()
        self._api = _RuntimeApi(self)
        # Shutting the API down waits for its loop's next look; a short interval keeps stopping many environments quick.
        threading.Thread(
            target=self._api.serve_forever, args=(0.05,), name=f"runtime-api-{code.name}", daemon=True
        ).start()
        host, port = self._api.server_address[:2]
        self._log = log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", code.handler],
            env=_lambda_environment(code, task_root, layer_roots, f"{host}:{port}"),
            cwd=task_root,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.last_used = time.monotonic()

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def invoke(self, event: bytes) -> InvocationResult:
        """Run one invocation; a timeout or a crash kills the process and is reported as Lambda reports it."""
        invocation = _Invocation(
            request_id=str(uuid.uuid4()),
            event=event,
            deadline_ms=int((time.time() + self.code.timeout_seconds) * 1000),
            invoked_arn=self.code.arn,
        )
        with self._lock:
            self._current = invocation
        self._next.put(invocation)
        deadline = time.monotonic() + self.code.timeout_seconds
        while not invocation.done.wait(0.2):
            if not self.alive:
                invocation.finish(_error("Runtime.ExitError", f"the runtime exited with {self._process.returncode}"))
            elif time.monotonic() > deadline:
                self.stop()
                invocation.finish(
                    _error("Sandbox.Timedout", f"Task timed out after {self.code.timeout_seconds:.2f} seconds")
                )
        self.last_used = time.monotonic()
        assert invocation.result is not None
        return invocation.result

    def next_invocation(self) -> _Invocation | None:
        return self._next.get()

    def finish(self, request_id: str, result: InvocationResult) -> None:
        with self._lock:
            current = self._current
        if current is not None and current.request_id == request_id:
            current.finish(result)

    def init_failed(self, result: InvocationResult) -> None:
        with self._lock:
            current = self._current
        if current is not None:
            current.finish(result)

    def stop(self) -> None:
        self._next.put(None)
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._api.shutdown()
        self._api.server_close()
        self._log.close()


def _lambda_environment(code: FunctionCode, task_root: Path, layer_roots: list[Path], runtime_api: str) -> dict[str, str]:
    """What Lambda puts in a function's environment; the host's own variables never reach it."""
    layer_bins = [str(root / "bin") for root in layer_roots if (root / "bin").is_dir()]
    reserved = {
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": code.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(code.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{code.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": code.region,
        "AWS_DEFAULT_REGION": code.region,
        # The execution role's session, as Lambda hands it over; the simulated account accepts any.
        "AWS_ACCESS_KEY_ID": "ASIASIMULATEDROLE",
        "AWS_SECRET_ACCESS_KEY": "simulated",
        "AWS_SESSION_TOKEN": "simulated",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
        "_HANDLER": code.handler,
        "PYTHONPATH": str(task_root),
        "PATH": os.pathsep.join([*layer_bins, str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "HOME": str(task_root.parent),
        "TMPDIR": str(task_root.parent / "tmp"),
    }
    deployed = {name: _under_layers(value, layer_roots) for name, value in code.environment.items()}
    return {**reserved, **code.simulation_environment, **deployed}


def _under_layers(value: str, layer_roots: list[Path]) -> str:
    """A path under /opt, pointed at the layer that holds it (Lambda merges layers there, later ones on top)."""
    if not value.startswith(LAMBDA_MOUNT + "/"):
        return value
    relative = value.removeprefix(LAMBDA_MOUNT + "/")
    for root in reversed(layer_roots):
        if (root / relative).exists():
            return str(root / relative)
    return value


def unpack(zip_bytes: bytes, into: Path) -> Path:
    """Unpack a deployment zip once per content, keeping each file's mode (ffmpeg must stay executable)."""
    target = into / hashlib.sha256(zip_bytes).hexdigest()[:16]
    if target.is_dir():
        return target
    partial = into / f".{target.name}.{uuid.uuid4().hex}"
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        for info in archive.infolist():
            path = Path(archive.extract(info, partial))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                path.chmod(mode)
    try:
        partial.rename(target)
    except OSError:  # another invocation unpacked the same zip first
        shutil.rmtree(partial, ignore_errors=True)
    return target


class LambdaHost:
    """Every deployed function's environments; ``invoke`` runs one invocation of a function by name or ARN."""

    def __init__(self, root: Path, lookup: Callable[[str], FunctionCode]) -> None:
        self._root = root
        self._lookup = lookup
        self._idle: dict[str, list[ExecutionEnvironment]] = {}
        self._busy: set[ExecutionEnvironment] = set()
        self._lock = threading.Lock()
        self._unpack_lock = threading.Lock()
        self._stopped = False
        (root / "code").mkdir(parents=True, exist_ok=True)
        (root / "logs").mkdir(parents=True, exist_ok=True)

    def log_path(self, function_name: str) -> Path:
        """Where the function's processes write: what CloudWatch Logs would hold."""
        return self._root / "logs" / f"{function_name}.log"

    def invoke(self, function: str, event: bytes) -> InvocationResult:
        code = self._lookup(function)
        environment = self._take(code)
        try:
            return environment.invoke(event)
        finally:
            self._give_back(environment)

    def _take(self, code: FunctionCode) -> ExecutionEnvironment:
        with self._lock:
            if self._stopped:
                raise RuntimeError("the simulated Lambda service has stopped")
            idle = self._idle.setdefault(code.name, [])
            while idle:
                environment = idle.pop()
                if environment.alive and environment.code.revision == code.revision:
                    self._busy.add(environment)
                    return environment
                environment.stop()
        # A new code or configuration gets a new environment, as an update does in Lambda.
        environment = self._start(code)
        with self._lock:
            self._busy.add(environment)
        return environment

    def _start(self, code: FunctionCode) -> ExecutionEnvironment:
        with self._unpack_lock:
            task_root = unpack(code.code_zip, self._root / "code")
            layers = [unpack(layer, self._root / "code") for layer in code.layer_zips]
        sandbox = self._root / "sandboxes" / uuid.uuid4().hex
        (sandbox / "tmp").mkdir(parents=True)
        # The task root is read-only in Lambda; each environment gets a /tmp of its own.
        link = sandbox / "task"
        link.symlink_to(task_root, target_is_directory=True)
        return ExecutionEnvironment(code, link, layers, self.log_path(code.name))

    def _give_back(self, environment: ExecutionEnvironment) -> None:
        with self._lock:
            self._busy.discard(environment)
            if environment.alive and not self._stopped:
                self._idle.setdefault(environment.code.name, []).append(environment)
            else:
                environment.stop()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            environments = [env for envs in self._idle.values() for env in envs] + list(self._busy)
            self._idle.clear()
        for environment in environments:
            environment.stop()
