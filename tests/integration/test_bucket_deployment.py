"""CDK's bucket deployment and bucket CORS, done by the simulated account from the template, against moto's S3."""

from __future__ import annotations

import io
import json
import zipfile

import boto3
from clipline.aws_sim.bucket_deployment import apply_bucket_cors, deploy_bucket_contents
from clipline.aws_sim.deployed_values import DeployedValues
from moto import mock_aws

MARKER = "<<marker:0xbaba:0>>"


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_files_are_unzipped_into_the_bucket_with_their_markers_resolved_and_cors_applied():
    template = {
        "Resources": {
            "Site": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "Artifacts": {
                "Type": "AWS::S3::Bucket",
                "Properties": {"CorsConfiguration": {"CorsRules": [
                    {"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["*"], "AllowedHeaders": ["content-type"], "MaxAge": 3600},
                ]}},
            },
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {}},
            "Files": {
                "Type": "Custom::CDKBucketDeployment",
                "Properties": {
                    "SourceBucketNames": [{"Fn::Sub": "assets-${AWS::Region}"}, {"Fn::Sub": "assets-${AWS::Region}"}],
                    "SourceObjectKeys": ["site.zip", "config.zip"],
                    "SourceMarkers": [{}, {MARKER: {"Fn::Join": ["", ["https://", {"Ref": "Api"}, ".example/"]]}}],
                    "DestinationBucketName": {"Ref": "Site"},
                },
            },
        },
    }  # fmt: skip
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in ("assets-us-east-1", "site-1", "artifacts-1"):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket="assets-us-east-1", Key="site.zip", Body=_zip({"index.html": "<p>hi</p>", "js/main.js": "1"}))
        s3.put_object(Bucket="assets-us-east-1", Key="config.zip", Body=_zip({"config.json": json.dumps({"apiUrl": MARKER})}))
        values = DeployedValues(
            template, {"Site": "site-1", "Artifacts": "artifacts-1", "Api": "abc"}, account_id="1", region="us-east-1"
        )
        values.stand_ins.add("https://abc.example/", "http://127.0.0.1:8080/")
        # When the account deploys what the custom resource would have
        (deployed,) = deploy_bucket_contents(template, values, s3, lambda name: name.replace("${AWS::Region}", "us-east-1"))
        # Then every file is in the site bucket, typed, and the marker holds the API's simulated URL
        assert (deployed.bucket, sorted(deployed.keys)) == ("site-1", ["config.json", "index.html", "js/main.js"])
        config = s3.get_object(Bucket="site-1", Key="config.json")
        assert json.load(config["Body"]) == {"apiUrl": "http://127.0.0.1:8080/"}
        assert s3.head_object(Bucket="site-1", Key="index.html")["ContentType"] == "text/html"
        # (the system's MIME table may spell JavaScript either way; browsers take both for modules)
        assert s3.head_object(Bucket="site-1", Key="js/main.js")["ContentType"] in ("text/javascript", "application/javascript")
        # And the CORS rules moto's CloudFormation ignores are on the bucket, in the S3 API's names
        assert apply_bucket_cors(template, values, s3) == ["artifacts-1"]
        (rule,) = s3.get_bucket_cors(Bucket="artifacts-1")["CORSRules"]
        assert (rule["AllowedMethods"], rule["AllowedOrigins"], rule["MaxAgeSeconds"]) == (["GET", "PUT"], ["*"], 3600)
