"""What CDK's bucket deployment custom resource does at deploy time, done by the account from the template.

moto's CloudFormation does not run custom resources, so ``Custom::CDKBucketDeployment``
is left out of the simulated template. Its properties say everything its handler
does: unzip each source asset (already published to the asset bucket), replace the
deploy-time markers in it with their resolved values (the API's URL in the
console's ``config.json``), and put every file into the destination bucket.
Bucket properties moto's CloudFormation ignores, CORS among them, are applied here
from the template too.
"""

from __future__ import annotations

import io
import mimetypes
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .deployed_values import DeployedValues

BUCKET_DEPLOYMENT = "Custom::CDKBucketDeployment"
# CloudFormation's names for a CORS rule's fields, and the S3 API's.
_CORS_FIELDS = {
    "AllowedHeaders": "AllowedHeaders",
    "AllowedMethods": "AllowedMethods",
    "AllowedOrigins": "AllowedOrigins",
    "ExposedHeaders": "ExposeHeaders",
    "MaxAge": "MaxAgeSeconds",
    "Id": "ID",
}


@dataclass(frozen=True)
class DeployedFiles:
    bucket: str
    keys: list[str]


def deploy_bucket_contents(
    template: dict[str, Any], values: DeployedValues, s3: Any, asset_bucket_of: Callable[[str], str]
) -> list[DeployedFiles]:
    """Perform every bucket deployment of ``template``; ``asset_bucket_of`` resolves a SourceBucketNames entry."""
    deployed = []
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != BUCKET_DEPLOYMENT:
            continue
        properties = resource["Properties"]
        bucket = values.resolve(properties["DestinationBucketName"])
        prefix = properties.get("DestinationBucketKeyPrefix", "")
        markers_by_source = properties.get("SourceMarkers") or [{} for _ in properties["SourceObjectKeys"]]
        keys = []
        for source_bucket, source_key, markers in zip(
            properties["SourceBucketNames"], properties["SourceObjectKeys"], markers_by_source
        ):
            archive = s3.get_object(Bucket=asset_bucket_of(_sub_text(source_bucket)), Key=source_key)["Body"].read()
            replacements = {marker: values.resolve(value) for marker, value in markers.items()}
            with zipfile.ZipFile(io.BytesIO(archive)) as files:
                for name in (info.filename for info in files.infolist() if not info.is_dir()):
                    body = files.read(name)
                    for marker, value in replacements.items():
                        body = body.replace(marker.encode(), value.encode())
                    key = prefix + name
                    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
                    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
                    keys.append(key)
        deployed.append(DeployedFiles(bucket, keys))
    return deployed


def apply_bucket_cors(template: dict[str, Any], values: DeployedValues, s3: Any) -> list[str]:
    """Put each bucket's CorsConfiguration, which moto's CloudFormation does not apply; the buckets it set."""
    configured = []
    for logical_id, resource in template.get("Resources", {}).items():
        rules = resource.get("Properties", {}).get("CorsConfiguration", {}).get("CorsRules")
        if resource.get("Type") != "AWS::S3::Bucket" or not rules:
            continue
        bucket = values.resolve({"Ref": logical_id})
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {_CORS_FIELDS[name]: _resolved(value, values) for name, value in rule.items()} for rule in rules
                ]
            },
        )
        configured.append(bucket)
    return configured


def _resolved(value: Any, values: DeployedValues) -> Any:
    if isinstance(value, list):
        return [values.resolve(item) for item in value]
    return value if isinstance(value, int) else values.resolve(value)


def _sub_text(value: Any) -> str:
    """The text of a ``Fn::Sub`` (the asset bucket's name, with ${AWS::...} left for the caller) or a string."""
    return value["Fn::Sub"] if isinstance(value, dict) and "Fn::Sub" in value else value
