"""One synthesis of the CDK app per test run, shared by every infrastructure test.

Synthesis is slow (a Node process, the layers, asset hashing), so it runs once:
the first pytest-xdist worker to get here synthesizes every stage under test,
with cdk-nag's AwsSolutions checks, into a directory all workers share; the
others wait on a lock and read the result. No AWS credentials or network are
involved: the stack is environment-agnostic and the layers come from build/.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

# jsii reads these when its Node process starts, i.e. at the first aws_cdk import below.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

from layers.dependencies.build import exclusive_lock  # noqa: E402 - after jsii's settings

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_CONTEXT: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text("utf-8"))["context"]
# The default (Amazon Transcribe), a stage with size overrides, and the other two ASR providers.
STAGES = ("dev", "prod", "whisper", "openai")
SUMMARY_NAME = "synth-summary.json"
NAG_REPORT_NAME = "validation-report.json"


@dataclass(frozen=True)
class Synthesis:
    outdir: Path
    templates: dict[str, dict[str, Any]]
    template_paths: dict[str, Path]
    # cdk-nag's policy validation report (CDK writes it when a plugin ran), and the synth error it caused, if any.
    nag_report: dict[str, Any] | None
    synth_error: str | None
    seconds: float


def stage_config(stage: str):  # -> infra.config.StageConfig
    from infra.config import StageConfig

    return StageConfig.model_validate({**CDK_CONTEXT["stages"][stage], "stage": stage})


def stack_name(stage: str) -> str:
    from infra.app import stack_name

    return stack_name(stage)


@contextmanager
def _without_aws_credentials() -> Iterator[None]:
    # Synthesis must not need an account: any real profile or key is hidden, fake ones stand in.
    saved = {key: value for key, value in os.environ.items() if key.startswith("AWS_") or key.startswith("CDK_")}
    for key in saved:
        del os.environ[key]
    os.environ.update({"AWS_ACCESS_KEY_ID": "synth", "AWS_SECRET_ACCESS_KEY": "synth", "AWS_REGION": "us-east-1"})
    try:
        yield
    finally:
        for key in [key for key in os.environ if key.startswith("AWS_") or key.startswith("CDK_")]:
            del os.environ[key]
        os.environ.update(saved)


def _synthesize(outdir: Path) -> None:
    from infra.app import build_app

    started = time.monotonic()
    # The app app.py synthesizes, with every stage under test as its own stack.
    app = build_app(CDK_CONTEXT, str(outdir), stages=STAGES, verbose_nag=True)
    error = None
    with _without_aws_credentials():
        try:
            app.synth()
        except RuntimeError as failure:  # a validation plugin's violations stop synth after the templates are written
            error = "".join(traceback.format_exception_only(failure))
    summary = {"synthError": error, "seconds": time.monotonic() - started}
    (outdir / SUMMARY_NAME).write_text(json.dumps(summary), "utf-8")


@pytest.fixture(scope="session")
def synthesis(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Synthesis:
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker has its own basetemp; their parent is shared by the whole run.
    shared = base.parent if worker_id != "master" else base
    outdir = shared / "cdk.out"
    with exclusive_lock(shared / "cdk.out.lock"):
        if not (outdir / SUMMARY_NAME).is_file():
            outdir.mkdir(parents=True, exist_ok=True)
            _synthesize(outdir)
    summary = json.loads((outdir / SUMMARY_NAME).read_text("utf-8"))
    paths = {stage: outdir / f"{stack_name(stage)}.template.json" for stage in STAGES}
    report_path = outdir / NAG_REPORT_NAME
    return Synthesis(
        outdir=outdir,
        templates={stage: json.loads(path.read_text("utf-8")) for stage, path in paths.items() if path.is_file()},
        template_paths=paths,
        nag_report=json.loads(report_path.read_text("utf-8")) if report_path.is_file() else None,
        synth_error=summary["synthError"],
        seconds=summary["seconds"],
    )


@pytest.fixture(scope="session")
def templates(synthesis: Synthesis) -> dict[str, Any]:
    """``aws_cdk.assertions.Template`` per stage, read from the shared synthesis."""
    from aws_cdk.assertions import Template

    missing = set(STAGES) - set(synthesis.templates)
    assert not missing, f"no template for {sorted(missing)}: {synthesis.synth_error}"
    return {stage: Template.from_json(template) for stage, template in synthesis.templates.items()}


@pytest.fixture(scope="session")
def template(templates: dict[str, Any]):
    """The default stage's template (Amazon Transcribe)."""
    return templates["dev"]


@pytest.fixture(scope="session")
def dev_template_json(synthesis: Synthesis) -> dict[str, Any]:
    return synthesis.templates["dev"]
