"""``clipline serve --aws-sim``: synthesize the stack, deploy it into a simulated account, serve it until stopped."""

from __future__ import annotations

import json
import logging
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .account import SimulatedAccount
from .assembly import read_stack, synthesize

# Runtime settings a stage gets in the simulation unless told otherwise: its sources are on this machine.
LOOPBACK_SOURCES = {"allow_private_sources": True}
# How the CDK app names a stage's stack (infra.app.stack_name; the runtime package never imports infra).
STACK_NAME = "Clipline-{stage}"


@dataclass(frozen=True)
class SimulationOptions:
    app_dir: Path
    stage: str
    host: str
    api_port: int
    endpoint_port: int
    console_port: int
    work_dir: Path | None = None
    assembly_dir: Path | None = None
    settings: dict[str, Any] | None = None
    ttl_interval_seconds: float = 5.0
    ttl_delay_seconds: float = 0.0
    transcribe_model: str | None = None


def stage_context(cdk_json: dict[str, Any], stage: str, settings: dict[str, Any]) -> dict[str, Any]:
    """cdk.json's context with ``stage`` selected and ``settings`` over its runtime settings, as ``-c`` would give."""
    context = json.loads(json.dumps(cdk_json.get("context", {})))
    stages = context.get("stages", {})
    if stage not in stages:
        raise ValueError(f"cdk.json has no stage {stage!r}; it has {sorted(stages)}")
    stages[stage]["settings"] = {**stages[stage].get("settings", {}), **settings}
    return {**context, "stage": stage}


def deploy(options: SimulationOptions) -> SimulatedAccount:
    """Synthesize (unless given an assembly), deploy and start the account; the caller stops it."""
    work_dir = options.work_dir or Path(tempfile.mkdtemp(prefix="clipline-aws-sim-"))
    assembly = options.assembly_dir
    if assembly is None:
        cdk_json = json.loads((options.app_dir / "cdk.json").read_text("utf-8"))
        context = stage_context(cdk_json, options.stage, {**LOOPBACK_SOURCES, **(options.settings or {})})
        started = time.monotonic()
        assembly = synthesize(options.app_dir, work_dir / "cdk.out", context)
        synthesis_seconds = round(time.monotonic() - started, 2)
    stack = read_stack(assembly, STACK_NAME.format(stage=options.stage))
    account = SimulatedAccount(
        stack,
        work_dir,
        host=options.host,
        api_port=options.api_port,
        endpoint_port=options.endpoint_port,
        console_port=options.console_port,
        ttl_interval_seconds=options.ttl_interval_seconds,
        ttl_delay_seconds=options.ttl_delay_seconds,
        transcribe_model=options.transcribe_model,
    )
    try:
        deployment = account.start()
    except BaseException:
        account.stop()
        raise
    if options.assembly_dir is None:
        deployment.seconds["synthesize"] = synthesis_seconds
    return account


def serve(options: SimulationOptions, ready_file: Path | None = None) -> int:
    # The simulation's own warnings (a poller's failed round, a failed rule target) go to stderr.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    account = deploy(options)
    deployment = account.deployment
    assert deployment is not None
    summary = {**deployment.summary(), "logs": str(account.lambdas.log_path("<function>"))}
    print(json.dumps(summary, indent=2), flush=True)
    if ready_file is not None:
        ready_file.write_text(json.dumps(summary), "utf-8")
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    account.stop()
    return 0


def serve_from_arguments(args: Any) -> int:
    """``clipline serve --aws-sim`` with its parsed options."""
    options = SimulationOptions(
        app_dir=args.app_dir.resolve(),
        stage=args.stage,
        host=args.host,
        api_port=args.port,
        endpoint_port=args.endpoint_port,
        console_port=args.console_port,
        work_dir=args.work_dir,
        assembly_dir=args.assembly,
        settings=dict(args.setting),
        ttl_interval_seconds=args.ttl_interval,
        ttl_delay_seconds=args.ttl_delay,
        transcribe_model=args.transcribe_model,
    )
    return serve(options, args.ready_file)
