"""The one place the simulated stack's template differs from the deployed one, and the definition's substitutions."""

from __future__ import annotations

import json

from clipline.aws_sim.moto_gaps import substitute_definition
from clipline.aws_sim.template import simulated_template

MODELLED = {"AWS::ApiGateway::Method", "AWS::Lambda::Permission", "AWS::Lambda::Function", "AWS::ApiGateway::Deployment"}


def a_template() -> dict:
    return {
        "Parameters": {"BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>"}},
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "clipline.handlers.create_job.lambda_handler"}},
            "Validator": {"Type": "AWS::ApiGateway::RequestValidator", "Properties": {}},
            "Stage": {"Type": "AWS::ApiGateway::Stage", "Properties": {"StageName": "dev"}},
            "Post": {
                "Type": "AWS::ApiGateway::Method",
                "Properties": {"HttpMethod": "POST", "RequestValidatorId": {"Ref": "Validator"}, "ApiKeyRequired": True},
            },
            "Permission": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {"SourceArn": {"Fn::Join": ["", ["arn:aws:execute-api:", {"Ref": "Stage"}, "/POST/api/jobs"]]}},
            },
            "Deployment": {"Type": "AWS::ApiGateway::Deployment", "DependsOn": ["Validator", "Post"], "Properties": {}},
        },
        "Outputs": {
            "ApiUrl": {"Value": {"Fn::Join": ["", ["https://", {"Ref": "Stage"}]]}},
            "Handler": {"Value": {"Ref": "Fn"}},
        },
    }


def test_types_moto_lacks_are_left_out_with_what_pointed_at_them_and_each_is_listed():
    # Given a template with a request validator and a stage, which moto does not model
    template = a_template()
    # When it is made into the simulated one
    simulated = simulated_template(template, MODELLED.__contains__)
    resources = simulated.template["Resources"]
    # Then both are gone, and so are the property, dependency and output that named them
    assert set(resources) == {"Fn", "Post", "Permission", "Deployment"}
    assert "RequestValidatorId" not in resources["Post"]["Properties"]
    assert resources["Post"]["Properties"]["ApiKeyRequired"] is True
    assert resources["Deployment"]["DependsOn"] == ["Post"]
    assert set(simulated.template["Outputs"]) == {"Handler"}
    # And a mention inside another value becomes a marker, not a dangling reference
    joined = resources["Permission"]["Properties"]["SourceArn"]["Fn::Join"][1]
    assert joined[1] == "not-simulated:Stage"
    # And the report lists every change, by logical id
    report = "\n".join(simulated.report())
    for line in ("Validator (AWS::ApiGateway::RequestValidator)", "Stage (AWS::ApiGateway::Stage)",
                 "Post (AWS::ApiGateway::Method): property RequestValidatorId", "ApiUrl (Output)",
                 "Permission (reference): to Stage"):  # fmt: skip
        assert line in report
    # And the template given is left as it was: the deployed one is never changed
    assert template == a_template()


def test_everything_moto_models_goes_through_unchanged():
    template = a_template()
    simulated = simulated_template(template, lambda kind: True)
    assert simulated.template == template and simulated.not_simulated == []


def test_definition_substitutions_fill_only_named_placeholders_and_leave_jsonpath_alone():
    definition = json.dumps(
        {"States": {"Probe": {"Resource": "${ProbeArn}", "Parameters": {"jobId.$": "$.jobId", "name.$": "$$.Execution.Name"},
                              "TimeoutSeconds": "${Unknown}"}}}
    )  # fmt: skip
    filled = json.loads(substitute_definition(definition, {"ProbeArn": "arn:aws:lambda:us-east-1:1:function:p"}))
    state = filled["States"]["Probe"]
    assert state["Resource"] == "arn:aws:lambda:us-east-1:1:function:p"
    assert state["Parameters"] == {"jobId.$": "$.jobId", "name.$": "$$.Execution.Name"}
    assert state["TimeoutSeconds"] == "${Unknown}"


def test_a_mock_preflight_method_is_left_out_with_the_deployment_dependency_on_it():
    # Given a CORS preflight: a method with a MOCK integration, which moto's Method cannot create (no URI)
    template = a_template()
    template["Resources"]["Preflight"] = {
        "Type": "AWS::ApiGateway::Method",
        "Properties": {"HttpMethod": "OPTIONS", "Integration": {"Type": "MOCK", "IntegrationResponses": [{}]}},
    }
    template["Resources"]["Deployment"]["DependsOn"].append("Preflight")
    # When it is made into the simulated one
    simulated = simulated_template(template, MODELLED.__contains__)
    # Then the mock method is gone, listed, and the deployment no longer waits for it; the proxy method stays
    assert "Preflight" not in simulated.template["Resources"] and "Post" in simulated.template["Resources"]
    assert simulated.template["Resources"]["Deployment"]["DependsOn"] == ["Post"]
    assert "Preflight (AWS::ApiGateway::Method): MOCK integration" in simulated.report()
