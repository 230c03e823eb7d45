"""The synthesized console: a private bucket behind CloudFront, its headers, its files, and CORS for its origin."""

from __future__ import annotations

import json

from clipline import console
from clipline.api.routes import API_ROUTES
from infra.console import SECURITY_HEADER_FIELDS

from .test_template import env_name, logical_id_of_handler, only, resources


def _distribution(template: dict) -> tuple[str, dict]:
    name, distribution = only(template, "AWS::CloudFront::Distribution")
    return name, distribution["Properties"]["DistributionConfig"]


def _console_origin(template: dict) -> dict:
    name, _ = _distribution(template)
    return {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [name, "DomainName"]}]]}


def test_the_site_is_a_private_bucket_read_only_through_cloudfront_over_https(dev_template_json) -> None:
    _, config = _distribution(dev_template_json)
    origin = config["Origins"][0]
    site_bucket = origin["DomainName"]["Fn::GetAtt"][0]
    assert site_bucket.startswith("ConsoleSite")
    # An origin access control, not a public bucket or website endpoint
    assert "OriginAccessControlId" in origin and origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert config["DefaultRootObject"] == console.INDEX_FILE
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    policies = [
        statement
        for policy in resources(dev_template_json, "AWS::S3::BucketPolicy").values()
        if policy["Properties"]["Bucket"] == {"Ref": site_bucket}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
    ]
    assert [statement["Principal"] for statement in policies] == [{"Service": "cloudfront.amazonaws.com"}]
    assert policies[0]["Action"] == "s3:GetObject"


def test_every_response_carries_the_consoles_security_headers_as_local_mode_sends_them(dev_template_json) -> None:
    _, config = _distribution(dev_template_json)
    policy_id = config["DefaultCacheBehavior"]["ResponseHeadersPolicyId"]["Ref"]
    policy = dev_template_json["Resources"][policy_id]["Properties"]["ResponseHeadersPolicyConfig"]
    security = policy["SecurityHeadersConfig"]
    csp = security["ContentSecurityPolicy"]
    assert csp["Override"] is True
    parts = csp["ContentSecurityPolicy"]["Fn::Join"][1]
    values = iter(range(len(parts)))
    text = "".join(part if isinstance(part, str) else f"<{next(values)}>" for part in parts)
    # The same policy local mode's gateway sends, with the stack's origins to call
    assert text == console.content_security_policy(
        connect_origins=("https://<0>.execute-api.<1>.<2>", "https://<3>", "https://<4>")
    )
    # The API the page may call is this stack's, and the artifact links are this stack's bucket's
    assert {"Ref": next(iter(resources(dev_template_json, "AWS::ApiGateway::RestApi")))} in parts
    artifacts = next(name for name in resources(dev_template_json, "AWS::S3::Bucket") if name.startswith("StorageArtifacts"))
    assert {"Fn::GetAtt": [artifacts, "RegionalDomainName"]} in parts
    assert security["FrameOptions"]["FrameOption"] == "DENY"
    assert security["ReferrerPolicy"]["ReferrerPolicy"] == "no-referrer"
    assert "ContentTypeOptions" in security and "StrictTransportSecurity" in security
    custom = {item["Header"]: item["Value"] for item in policy["CustomHeadersConfig"]["Items"]}
    # The rest of the console's headers go as custom ones
    expected = {name: value for name, value in console.security_headers().items() if name not in SECURITY_HEADER_FIELDS}
    assert custom == expected


def test_the_files_are_deployed_with_a_config_naming_this_stacks_api(dev_template_json) -> None:
    _, deployment = only(dev_template_json, "Custom::CDKBucketDeployment")
    properties = deployment["Properties"]
    assert len(properties["SourceObjectKeys"]) == 2
    markers = [marker for source in properties["SourceMarkers"] for marker in source.values()]
    assert len(markers) == 1
    rest_api = next(iter(resources(dev_template_json, "AWS::ApiGateway::RestApi")))
    assert {"Ref": rest_api} in markers[0]["Fn::Join"][1]


def test_the_api_lets_only_the_consoles_origin_call_it_from_a_browser(dev_template_json) -> None:
    origin = _console_origin(dev_template_json)
    quoted = {"Fn::Join": ["", ["'https://", origin["Fn::Join"][1][1], "'"]]}
    preflights = [
        m["Properties"] for m in resources(dev_template_json, "AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "OPTIONS"
    ]  # fmt: skip
    assert len(preflights) == len({route.resource for route in API_ROUTES})
    for method in preflights:
        # Answered by API Gateway itself, without a key or a function
        assert method["Integration"]["Type"] == "MOCK" and not method.get("ApiKeyRequired")
        headers = method["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == quoted
        assert "X-Api-Key" in headers["method.response.header.Access-Control-Allow-Headers"]
    for response in resources(dev_template_json, "AWS::ApiGateway::GatewayResponse").values():
        parameters = response["Properties"]["ResponseParameters"]
        assert parameters["gatewayresponse.header.Access-Control-Allow-Origin"] == quoted
    # Each route's function answers with the header (Powertools) for that origin alone
    for route in API_ROUTES:
        function = dev_template_json["Resources"][logical_id_of_handler(dev_template_json, "dev", route.handler)]
        assert function["Properties"]["Environment"]["Variables"][env_name("console_origins")] == origin


def test_presigned_links_may_be_used_from_the_page_without_credentials(dev_template_json) -> None:
    artifacts = next(
        bucket["Properties"] for name, bucket in resources(dev_template_json, "AWS::S3::Bucket").items()
        if name.startswith("StorageArtifacts")
    )  # fmt: skip
    (rule,) = artifacts["CorsConfiguration"]["CorsRules"]
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD", "PUT"]
    assert rule["AllowedOrigins"] == ["*"] and rule["AllowedHeaders"] == ["content-type"]
    assert "Credentials" not in json.dumps(rule)
