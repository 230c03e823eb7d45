"""The app app.py synthesizes, and what only a synthesis of part of it can show (no shared synthesis)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clipline.api.openapi import api_gateway_model
from clipline.api.schemas import CreateJobBody

from .conftest import CDK_CONTEXT, stage_config


def test_build_app_makes_one_stack_for_the_stage_the_context_names() -> None:
    from aws_cdk import Stack

    from infra.app import build_app
    from infra.stack import ClipStack

    app = build_app({**CDK_CONTEXT, "stage": "whisper"})

    stacks = [child for child in app.node.children if isinstance(child, Stack)]
    assert [stack.stack_name for stack in stacks] == ["Clipline-whisper"]
    assert isinstance(stacks[0], ClipStack) and stacks[0].config == stage_config("whisper")


def test_build_app_refuses_a_stage_the_context_does_not_define() -> None:
    from infra.app import build_app

    with pytest.raises(ValueError, match="not in the 'stages' context"):
        build_app({**CDK_CONTEXT, "stage": "staging"})


def test_app_py_builds_its_app_with_build_app() -> None:
    from .conftest import REPO_ROOT

    source = (REPO_ROOT / "app.py").read_text("utf-8")
    assert "from infra.app import build_app" in source and "build_app().synth()" in source


def _api_template() -> dict[str, Any]:
    """The template of the Api construct alone, in front of stand-in functions."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk.assertions import Template

    from infra.api import Api

    app = cdk.App(context=CDK_CONTEXT)
    stack = cdk.Stack(app, "ApiOnly")
    functions: dict[str, lambda_.Function] = {}

    def function_for_handler(handler: str) -> lambda_.Function:
        if handler not in functions:
            functions[handler] = lambda_.Function(
                stack, f"F{len(functions)}", runtime=lambda_.Runtime.PYTHON_3_12,
                handler="index.handler", code=lambda_.Code.from_inline("def handler(event, context): pass"),
            )  # fmt: skip
        return functions[handler]

    Api(stack, "Api", config=stage_config("dev"), function_for_handler=function_for_handler)
    return Template.from_stack(stack).to_json()


def _deployment_id(template: dict[str, Any]) -> str:
    (deployment,) = [name for name, r in template["Resources"].items() if r["Type"] == "AWS::ApiGateway::Deployment"]
    return deployment


def test_a_changed_request_model_makes_a_new_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the API with clipline's request model, and the same API with one more property in it
    before = _api_template()
    changed = json.loads(json.dumps(api_gateway_model()))
    changed.setdefault("properties", {})["addedField"] = {"type": "string"}
    monkeypatch.setattr(
        "infra.api.api_gateway_model", lambda model: changed if model is CreateJobBody else api_gateway_model(model)
    )
    after = _api_template()

    # Then the model differs and so does the deployment, so CloudFormation deploys the new model to the stage
    (model,) = [
        r for name, r in after["Resources"].items() if r["Type"] == "AWS::ApiGateway::Model" and "CreateJobModel" in name
    ]
    assert model["Properties"]["Schema"] == changed
    assert _deployment_id(before) != _deployment_id(after)
    # And the same model keeps the same deployment (no redeploy on every synth)
    monkeypatch.undo()
    assert _deployment_id(_api_template()) == _deployment_id(before)


def test_the_simulated_account_names_each_stage_stack_as_the_app_does() -> None:
    from clipline.aws_sim.server import STACK_NAME
    from infra.app import stack_name

    for stage in CDK_CONTEXT["stages"]:
        assert STACK_NAME.format(stage=stage) == stack_name(stage)
