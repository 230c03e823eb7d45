"""cfn-lint finds no errors in any synthesized template, and no warnings beyond the explained ones."""

from __future__ import annotations

import pytest
from cfnlint.api import ManualArgs, lint_file

from .conftest import STAGES, Synthesis

pytestmark = pytest.mark.slow

# Warnings ignored, each with why it is not a defect of this stack.
IGNORED_WARNINGS = {
    # CDK adds DependsOn from each function (and the state machine) to its role's default policy, so
    # the first invocation finds its permissions in place; cfn-lint sees the GetAtt on the role and
    # calls the DependsOn redundant, which for the policy resource it is not.
    "W3005",
}
LINT_REGIONS = ["us-east-1", "eu-west-1"]


@pytest.mark.parametrize("stage", STAGES)
def test_cfn_lint_finds_no_errors_and_only_explained_warnings(synthesis: Synthesis, stage: str) -> None:
    matches = lint_file(
        synthesis.template_paths[stage], ManualArgs(regions=LINT_REGIONS, ignore_checks=sorted(IGNORED_WARNINGS))
    )
    errors = [match for match in matches if match.rule.id.startswith("E")]
    warnings = [match for match in matches if match.rule.id.startswith("W")]
    assert errors == [], "\n".join(str(match) for match in errors)
    assert warnings == [], "\n".join(str(match) for match in warnings)
