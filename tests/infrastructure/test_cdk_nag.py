"""cdk-nag's AwsSolutions rules pass on every stage: each exception is acknowledged in the construct it
concerns, with the rule's id, a reason, and a comment on why."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, Synthesis

pytestmark = pytest.mark.slow

INFRA = REPO_ROOT / "infra"


def _errors(report: dict) -> list[str]:
    return [
        f"{violation['ruleName']} at {construct['constructPath']}"
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        if violation.get("severity") == "error"
        for construct in violation["violatingConstructs"]
    ]


def test_the_synthesis_passed_cdk_nag_with_no_unacknowledged_errors(synthesis: Synthesis) -> None:
    # CDK writes the report whenever a validation plugin is registered; a passing plugin adds no entry.
    assert synthesis.nag_report is not None, "cdk-nag did not run: no validation report in the cloud assembly"
    assert _errors(synthesis.nag_report) == []
    assert synthesis.synth_error is None


def test_cdk_nag_reports_what_it_should_so_the_passing_synthesis_means_something(tmp_path: Path) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = cdk.Stack(app, "Careless")
    sqs.Queue(stack, "Plain")  # no dead-letter queue, no SSL enforcement
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    errors = _errors(json.loads((tmp_path / "validation-report.json").read_text("utf-8")))
    assert any(error.startswith("AwsSolutions-SQS4") for error in errors), errors


def _acknowledge_calls(path: Path) -> list[tuple[ast.Call, int]]:
    tree = ast.parse(path.read_text("utf-8"))
    return [
        (node, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "acknowledge"
    ]


def test_every_acknowledgement_names_its_rule_gives_a_reason_and_a_comment_says_why() -> None:
    found = 0
    for path in sorted(INFRA.glob("*.py")):
        lines = path.read_text("utf-8").splitlines()
        for call, line in _acknowledge_calls(path):
            found += 1
            where = f"{path.name}:{line}"
            rule, reason = call.args[1], call.args[2]
            assert isinstance(rule, ast.Constant) and rule.value.startswith("AwsSolutions-"), where
            assert isinstance(reason, (ast.Constant, ast.JoinedStr)) or len(ast.unparse(reason)) > 20, where
            assert len(ast.unparse(reason)) > 30, f"{where}: the reason says too little"
            # The comment sits right above the call (or above the statement holding it).
            preceding = [text.strip() for text in lines[max(0, line - 3) : line - 1]]
            assert any(text.startswith("#") for text in preceding), f"{where}: no comment on why"
    assert found > 0
