"""The stack's CloudFront distribution, on loopback: its S3 origin's objects with its response headers policy.

moto models no CloudFront resource, so the distribution is left out of the simulated
template and served here, as deployed: the origin bucket, the default root object
and every header of the response headers policy come from the template, with their
values resolved against the created resources. Caching is not simulated.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.exceptions import ClientError

from ..local.proxy_events import ProxyRequestHandler
from .deployed_values import DeployedValues

DISTRIBUTION = "AWS::CloudFront::Distribution"


@dataclass(frozen=True)
class Distribution:
    logical_id: str
    bucket: str
    root_object: str
    headers: dict[str, str]


def deployed_distribution(template: dict[str, Any], values: DeployedValues) -> Distribution | None:
    """The template's one distribution with an S3 origin, as its configuration describes it, or None."""
    resources = template.get("Resources", {})
    found = [(name, item) for name, item in resources.items() if item.get("Type") == DISTRIBUTION]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError("the simulated account serves one distribution; the template has several")
    logical_id, resource = found[0]
    config = resource["Properties"]["DistributionConfig"]
    origin_domain = config["Origins"][0]["DomainName"]["Fn::GetAtt"]
    bucket = values.resolve({"Ref": origin_domain[0]})
    policy_id = config["DefaultCacheBehavior"].get("ResponseHeadersPolicyId", {}).get("Ref")
    headers = _policy_headers(resources[policy_id], values) if policy_id else {}
    return Distribution(logical_id, bucket, config.get("DefaultRootObject", ""), headers)


def _policy_headers(policy: dict[str, Any], values: DeployedValues) -> dict[str, str]:
    """The headers an AWS::CloudFront::ResponseHeadersPolicy adds to every response."""
    config = policy["Properties"]["ResponseHeadersPolicyConfig"]
    security = config.get("SecurityHeadersConfig", {})
    headers = {}
    if "ContentSecurityPolicy" in security:
        headers["Content-Security-Policy"] = values.resolve(security["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    if "ContentTypeOptions" in security:
        headers["X-Content-Type-Options"] = "nosniff"
    if "FrameOptions" in security:
        headers["X-Frame-Options"] = security["FrameOptions"]["FrameOption"]
    if "ReferrerPolicy" in security:
        headers["Referrer-Policy"] = security["ReferrerPolicy"]["ReferrerPolicy"]
    if "StrictTransportSecurity" in security:
        hsts = security["StrictTransportSecurity"]
        value = f"max-age={hsts['AccessControlMaxAgeSec']}"
        headers["Strict-Transport-Security"] = value + ("; includeSubDomains" if hsts.get("IncludeSubdomains") else "")
    for item in config.get("CustomHeadersConfig", {}).get("Items", []):
        headers[item["Header"]] = values.resolve(item["Value"])
    return headers


class SimulatedDistribution(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, host: str, port: int, s3: Any) -> None:
        """``s3`` is a boto3 S3 client of the account, shared by the request threads (boto3 clients are thread-safe)."""
        super().__init__((host, port), _Handler)
        self.s3 = s3
        self.distribution: Distribution | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def serve(self, distribution: Distribution) -> None:
        self.distribution = distribution
        threading.Thread(target=self.serve_forever, name="cloudfront", daemon=True).start()


class _Handler(ProxyRequestHandler):
    server: SimulatedDistribution
    server_version = "CloudFront"

    def _dispatch(self) -> None:
        distribution = self.server.distribution
        if distribution is None or self.command not in ("GET", "HEAD"):
            return self._answer(HTTPStatus.FORBIDDEN, b"", "text/plain", {})
        key = unquote(urlsplit(self.path).path).lstrip("/") or distribution.root_object
        s3 = self.server.s3
        try:
            if not key:
                raise s3.exceptions.NoSuchKey({"Error": {"Code": "NoSuchKey"}}, "GetObject")
            found = s3.get_object(Bucket=distribution.bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            # What S3 answers CloudFront's origin access control for a key it lacks.
            return self._answer(HTTPStatus.FORBIDDEN, b"AccessDenied", "application/xml", distribution.headers)
        except ClientError:
            # The origin failed: CloudFront answers 502 for it.
            return self._answer(HTTPStatus.BAD_GATEWAY, b"", "text/plain", distribution.headers)
        body = found["Body"].read()
        self._answer(HTTPStatus.OK, body, found.get("ContentType", "application/octet-stream"), distribution.headers)

    def _answer(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
