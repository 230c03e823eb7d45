"""The web console as a static site: a private bucket behind CloudFront, with the console's security headers.

The files are the runtime package's ``clipline/console`` folder, deployed as they
are, with a ``config.json`` naming the API. CloudFront reads the bucket through an
origin access control, and adds the same headers local mode's gateway sends.
"""

from __future__ import annotations

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from clipline import console

from . import FUNCTIONS_DIR, acknowledge, private_bucket

CONSOLE_DIR = FUNCTIONS_DIR / "clipline" / "console"
# No invalidation after a deployment (its permission would be on every distribution in the account):
# edges keep the files this long instead.
SITE_CACHE_TTL = Duration.minutes(5)
# CloudFront forbids its security-header fields among custom headers; these are the rest.
SECURITY_HEADER_FIELDS = {
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
}


class Console(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        rest_api: apigateway.RestApi,
        artifacts_bucket: s3.IBucket,
        access_logs_bucket: s3.IBucket,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = private_bucket(
            self,
            "Site",
            server_access_logs_bucket=access_logs_bucket,
            server_access_logs_prefix="console-site/",
            removal_policy=removal_policy,
        )
        stack = Stack.of(self)
        # The origins the page calls: the API, and the artifact links in both of S3's spellings
        # (boto3 signs the global name in us-east-1 and the regional one elsewhere).
        api_origin = Fn.join("", ["https://", rest_api.rest_api_id, ".execute-api.", stack.region, ".", stack.url_suffix])
        storage_origins = (
            f"https://{artifacts_bucket.bucket_domain_name}",
            f"https://{artifacts_bucket.bucket_regional_domain_name}",
        )
        headers = console.security_headers(connect_origins=(api_origin, *storage_origins))
        self.headers_policy = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="clipline console: CSP, nosniff, no framing, no referrer",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=headers["Content-Security-Policy"], override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365), include_subdomains=True, override=True
                ),
            ),
            custom_headers_behavior=cloudfront.ResponseCustomHeadersBehavior(
                custom_headers=[
                    cloudfront.ResponseCustomHeader(header=name, value=value, override=True)
                    for name, value in headers.items()
                    if name not in SECURITY_HEADER_FIELDS
                ]
            ),
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="clipline console",
            default_root_object=console.INDEX_FILE,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                response_headers_policy=self.headers_policy,
                cache_policy=cloudfront.CachePolicy(
                    self,
                    "CachePolicy",
                    comment="clipline console: a new release shows within minutes, without an invalidation",
                    default_ttl=SITE_CACHE_TTL,
                    max_ttl=SITE_CACHE_TTL,
                    min_ttl=Duration.seconds(0),
                    enable_accept_encoding_gzip=True,
                    enable_accept_encoding_brotli=True,
                ),
            ),
            enable_logging=True,
            log_bucket=access_logs_bucket,
            log_file_prefix="console-cdn/",
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        # The origin the API and the artifact bucket let call them from a browser.
        self.origin = Fn.join("", ["https://", self.distribution.distribution_domain_name])
        deployment = s3_deployment.BucketDeployment(
            self,
            "Files",
            sources=[
                s3_deployment.Source.asset(str(CONSOLE_DIR), exclude=["*.py", "__pycache__", "*.pyc"]),
                s3_deployment.Source.json_data(console.CONFIG_FILE, {"apiUrl": rest_api.url}),
            ],
            destination_bucket=self.bucket,
        )
        self._acknowledge_findings(deployment)

    def _acknowledge_findings(self, deployment: s3_deployment.BucketDeployment) -> None:
        stack = Stack.of(self)
        # CDK's deployment function, one per stack, runs only while a deployment copies the files.
        deployment_function = deployment.handler_role.node.scope
        # It logs like every CDK provider function, with the managed basic execution role.
        acknowledge(
            deployment_function,
            "AwsSolutions-IAM4",
            "CDK's bucket deployment function logs with the basic execution role, like every CDK provider.",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        )
        # It reads this stack's assets and writes the site's objects, whose keys are the console's files.
        acknowledge(
            deployment_function,
            "AwsSolutions-IAM5",
            "CDK's bucket deployment copies the asset's objects into the site bucket.",
            f"Resource::<{stack.resolve(stack.get_logical_id(self.bucket.node.default_child))}.Arn>/*",
            "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*",
        )
        # Its runtime is CDK's choice, raised with CDK's releases (the pin in constraints.txt).
        acknowledge(
            deployment_function,
            "AwsSolutions-L1",
            "CDK chooses the runtime of its bucket deployment function and raises it with its releases.",
        )
        # Whoever holds a key may use the console from anywhere, as they may use the API.
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR1",
            "The console is for any API key holder, wherever they are; the API behind it enforces access.",
        )
        # The site is public static files; what they call is the API, behind its own WAF.
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR2",
            "The console is static files; the API it calls has its own WAF rules and usage plans.",
        )
        # The viewer TLS policy can only be chosen with a certificate of one's own, for a custom domain.
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR4",
            "The default CloudFront certificate fixes the viewer TLS policy; a custom domain with its own "
            "certificate can set TLSv1.2_2021.",
        )
