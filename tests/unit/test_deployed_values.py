"""Deployed values the simulated account resolves itself, and the simulated endpoints that stand in for AWS's."""

from __future__ import annotations

import pytest
from clipline.aws_sim.api_gateway import gateway_responses, preflights
from clipline.aws_sim.deployed_values import DeployedValues

API_URL = {
    "Fn::Join": ["", ["https://", {"Ref": "Api"}, ".execute-api.", {"Ref": "AWS::Region"}, ".",
                      {"Ref": "AWS::URLSuffix"}, "/", {"Ref": "Stage"}, "/"]],
}  # fmt: skip
CONSOLE_ORIGIN = {"Fn::Join": ["", ["https://", {"Fn::GetAtt": ["Site", "DomainName"]}]]}


def a_template() -> dict:
    return {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {}},
            "Stage": {"Type": "AWS::ApiGateway::Stage", "Properties": {"StageName": "dev"}},
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "Site": {"Type": "AWS::CloudFront::Distribution", "Properties": {}},
            "Jobs": {"Type": "AWS::ApiGateway::Resource", "Properties": {"ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]}, "PathPart": "jobs"}},
            "Job": {"Type": "AWS::ApiGateway::Resource", "Properties": {"ParentId": {"Ref": "Jobs"}, "PathPart": "{id}"}},
            "JobPreflight": {
                "Type": "AWS::ApiGateway::Method",
                "Properties": {
                    "HttpMethod": "OPTIONS",
                    "ResourceId": {"Ref": "Job"},
                    "Integration": {
                        "Type": "MOCK",
                        "IntegrationResponses": [{
                            "StatusCode": "204",
                            "ResponseParameters": {
                                "method.response.header.Access-Control-Allow-Origin": {"Fn::Join": ["", ["'", CONSOLE_ORIGIN, "'"]]},
                                "method.response.header.Access-Control-Allow-Methods": "'GET,DELETE'",
                            },
                        }],
                    },
                },
            },
            "Forbidden": {
                "Type": "AWS::ApiGateway::GatewayResponse",
                "Properties": {
                    "ResponseType": "INVALID_API_KEY",
                    "StatusCode": "403",
                    "ResponseParameters": {"gatewayresponse.header.Access-Control-Allow-Origin": {"Fn::Join": ["", ["'", CONSOLE_ORIGIN, "'"]]}},
                },
            },
        },
    }  # fmt: skip


def values_of(template: dict) -> DeployedValues:
    # The stack created these; the distribution is left out of the simulated template
    return DeployedValues(template, {"Api": "abc123", "Bucket": "artifacts-1"}, account_id="123456789012", region="us-east-1")


def test_expressions_resolve_as_cloudformation_would_against_the_created_resources():
    values = values_of(a_template())
    assert values.evaluate(API_URL) == "https://abc123.execute-api.us-east-1.amazonaws.com/dev/"
    assert values.evaluate({"Fn::GetAtt": ["Bucket", "RegionalDomainName"]}) == "artifacts-1.s3.us-east-1.amazonaws.com"
    assert values.evaluate({"Fn::GetAtt": ["Bucket", "DomainName"]}) == "artifacts-1.s3.amazonaws.com"
    # A resource the account runs itself reads as the marker moto's template gives it
    assert values.evaluate(CONSOLE_ORIGIN) == "https://not-simulated:Site"
    with pytest.raises(ValueError, match="does not evaluate"):
        values.evaluate({"Fn::Sub": "${AWS::Region}"})
    with pytest.raises(ValueError, match="no resource"):
        values.evaluate({"Ref": "Missing"})


def test_stand_ins_replace_aws_endpoints_the_longest_first():
    values = values_of(a_template())
    values.stand_ins.add("https://abc123.execute-api.us-east-1.amazonaws.com", "http://127.0.0.1:8080")
    values.stand_ins.add("https://abc123.execute-api.us-east-1.amazonaws.com/dev/", "http://127.0.0.1:8080/")
    values.stand_ins.add("https://not-simulated:Site", "http://127.0.0.1:9000")
    # The URL with its stage path is the gateway's root, not the gateway's origin followed by /dev/
    assert values.resolve(API_URL) == "http://127.0.0.1:8080/"
    assert values.resolve(CONSOLE_ORIGIN) == "http://127.0.0.1:9000"
    assert values.stand_ins.apply("connect-src https://abc123.execute-api.us-east-1.amazonaws.com") == (
        "connect-src http://127.0.0.1:8080"
    )


def test_preflights_and_gateway_responses_carry_their_static_headers_resolved():
    template = a_template()
    values = values_of(template)
    values.stand_ins.add("https://not-simulated:Site", "http://127.0.0.1:9000")
    (preflight,) = preflights(template, values.resolve)
    # Matched on the resource's whole path, built from its parents
    assert preflight.pattern.match("/jobs/0123") and not preflight.pattern.match("/jobs")
    assert preflight.status == 204
    assert preflight.headers == {"Access-Control-Allow-Origin": "http://127.0.0.1:9000", "Access-Control-Allow-Methods": "GET,DELETE"}
    response = gateway_responses(template, values.resolve)["INVALID_API_KEY"]
    assert response.headers == {"Access-Control-Allow-Origin": "http://127.0.0.1:9000"}
