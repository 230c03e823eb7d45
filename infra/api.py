"""The REST API: one Lambda per route, API keys with usage plans, request validation, and a WAF rate rule."""

from __future__ import annotations

import json
from typing import Callable

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from clipline.api import cors, schemas
from clipline.api.openapi import api_gateway_model
from clipline.api.routes import API_ROUTES
from clipline.domain import errors

from . import acknowledge
from .config import StageConfig

JSON = "application/json"
# One JSON object per request. requestId is the correlation id of every error envelope; apiKeyId
# (never the key itself) tells which client it was; wafResponseCode shows the rate rule at work.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "apiKeyId": "$context.identity.apiKeyId",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "errorType": "$context.error.responseType",
    "errorMessage": "$context.error.message",
    "wafResponseCode": "$context.wafResponseCode",
}
# WAF counts requests over a window of 1, 2, 5 or 10 minutes; one minute matches the setting's unit.
WAF_EVALUATION_WINDOW_SECONDS = 60
# WAF refuses a rate limit below 10 per window.
WAF_MINIMUM_RATE_LIMIT = 10


def waf_rate_limit(job_creations_per_ip_per_minute: int) -> int:
    """The WAF rule's limit per one-minute window for CLIPLINE_JOB_CREATIONS_PER_IP_PER_MINUTE.

    With a 60-second evaluation window the setting maps one to one, except that WAF's
    floor of 10 makes any smaller setting 10.
    """
    return max(WAF_MINIMUM_RATE_LIMIT, job_creations_per_ip_per_minute)


def error_envelope(code: str, message: str = "$context.error.messageString") -> str:
    """clipline's error envelope as a gateway response template (VTL), with API Gateway's request id.

    ``$context.error.messageString`` is already a quoted JSON string, so it goes in bare.
    """
    return (
        '{"error": {"code": "' + code + '", "message": ' + message + ', "correlationId": "$context.requestId"}}'
    )


# API Gateway's own refusals, answered in clipline's envelope with clipline's codes.
# None keeps API Gateway's status code for the type (the DEFAULT_* families cover several).
GATEWAY_RESPONSES: dict[str, tuple[str | None, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": ("404", errors.RouteNotFoundError.code),
    "RESOURCE_NOT_FOUND": ("404", errors.RouteNotFoundError.code),
    "INVALID_API_KEY": ("403", errors.ForbiddenError.code),
    "ACCESS_DENIED": ("403", errors.ForbiddenError.code),
    # No authorizer or IAM auth is configured, so these can only mean a refused caller; one code for all.
    "UNAUTHORIZED": ("403", errors.ForbiddenError.code),
    "EXPIRED_TOKEN": ("403", errors.ForbiddenError.code),
    "INVALID_SIGNATURE": ("403", errors.ForbiddenError.code),
    # Without this, a non-JSON body would fall to DEFAULT_4XX and be reported as a validation failure.
    "UNSUPPORTED_MEDIA_TYPE": ("415", errors.UnsupportedMediaTypeError.code),
    "THROTTLED": ("429", errors.TooManyRequestsError.code),
    "QUOTA_EXCEEDED": ("429", errors.QuotaExceededError.code),
    "BAD_REQUEST_BODY": ("400", errors.ValidationFailedError.code),
    "BAD_REQUEST_PARAMETERS": ("400", errors.ValidationFailedError.code),
    "REQUEST_TOO_LARGE": ("413", errors.PayloadTooLargeError.code),
    "WAF_FILTERED": ("429", errors.TooManyRequestsError.code),
    "DEFAULT_4XX": (None, errors.ValidationFailedError.code),
    "API_CONFIGURATION_ERROR": ("500", errors.InternalError.code),
    "INTEGRATION_FAILURE": ("502", errors.InternalError.code),
    "INTEGRATION_TIMEOUT": ("504", errors.InternalError.code),
    "DEFAULT_5XX": (None, errors.InternalError.code),
}
# The validator's own words name the offending field; the envelope's message carries them.
_VALIDATION_MESSAGE = '"$context.error.validationErrorString"'
_MESSAGES = {"BAD_REQUEST_BODY": _VALIDATION_MESSAGE, "BAD_REQUEST_PARAMETERS": _VALIDATION_MESSAGE}


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        function_for_handler: Callable[[str], lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays[config.log_retention],
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.rest_api = apigateway.RestApi(
            self,
            "RestApi",
            rest_api_name=config.name_prefix,
            description="clipline: cut, transcribe and subtitle clips",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            api_key_source_type=apigateway.ApiKeySourceType.HEADER,
            # The role API Gateway logs with is one per account and region (AWS::ApiGateway::Account), shared
            # by every stage and every other API there: a stack that owned it would take it down with it on
            # destroy and break the others' logging. It is set up once per account and region (docs/deploy.md).
            cloud_watch_role=False,
            deploy_options=apigateway.StageOptions(
                stage_name=config.stage,
                throttling_rate_limit=config.api_rate_limit,
                throttling_burst_limit=config.api_burst_limit,
                access_log_destination=apigateway.LogGroupLogDestination(self.access_logs),
                access_log_format=apigateway.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                # Request bodies can hold source URLs with tokens in their query; keep them out of logs.
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
            ),
        )
        self.gateway_responses = {}
        for response_type, (status, code) in GATEWAY_RESPONSES.items():
            self.gateway_responses[response_type] = self.rest_api.add_gateway_response(
                f"{response_type.title().replace('_', '')}Response",
                type=apigateway.ResponseType.of(response_type),
                status_code=status,
                templates={JSON: error_envelope(code, _MESSAGES.get(response_type, "$context.error.messageString"))},
            )

        validator = apigateway.RequestValidator(
            self,
            "Validator",
            rest_api=self.rest_api,
            validate_request_body=True,
            validate_request_parameters=True,
        )
        self.body_models = {
            route.body_model: self._body_model(route.body_model, f"{route.method} {route.resource}")
            for route in API_ROUTES
            if route.body_model is not None
        }

        self.methods: list[apigateway.Method] = []
        # Each route's resource with its methods, for the CORS preflight that allow_browser_origin answers.
        self.route_methods: dict[str, tuple[apigateway.Resource, list[str]]] = {}
        for route in API_ROUTES:
            resource = self.rest_api.root.resource_for_path(route.resource)
            self.route_methods.setdefault(route.resource, (resource, []))[1].append(route.method)
            method = resource.add_method(
                route.method,
                apigateway.LambdaIntegration(function_for_handler(route.handler)),
                api_key_required=True,
                request_validator=validator,
                request_models={JSON: self.body_models[route.body_model]} if route.body_model else None,
            )
            self.methods.append(method)
        # The design's access model: callers are services holding API keys, and each job belongs to its key.
        acknowledge(
            self.rest_api,
            "AwsSolutions-APIG4",
            "Access is by API key with usage plans (apiKeyRequired on every method); clipline has no "
            "end-user identities to authorize.",
        )
        # Same reason: there are no end users, so no user pool to authorize them with.
        acknowledge(
            self.rest_api, "AwsSolutions-COG4", "No Cognito user pool: callers are services authenticated by API key."
        )

        self.usage_plans: dict[str, apigateway.UsagePlan] = {}
        for plan_name, plan in config.usage_plans.items():
            usage_plan = self.rest_api.add_usage_plan(
                f"{plan_name.title()}UsagePlan",
                name=f"{config.name_prefix}-{plan_name}",
                throttle=apigateway.ThrottleSettings(rate_limit=plan.rate_limit, burst_limit=plan.burst_limit),
                quota=apigateway.QuotaSettings(
                    limit=plan.quota_limit, period=getattr(apigateway.Period, plan.quota_period)
                ),
            )
            usage_plan.add_api_stage(stage=self.rest_api.deployment_stage)
            self.usage_plans[plan_name] = usage_plan

        self.web_acl = self._job_creation_rate_rule(config)
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.rest_api.deployment_stage.stage_arn,
            web_acl_arn=self.web_acl.attr_arn,
        )

    def allow_browser_origin(self, origin: str) -> None:
        """Let pages from ``origin`` (the console's) call the API from a browser.

        API Gateway answers their CORS preflights itself, without a key or a Lambda, and
        its own refusals (a bad key, throttling) carry the header too, so the page can
        read them; the functions' answers carry it from Powertools (CLIPLINE_CONSOLE_ORIGINS).
        """
        for resource, methods in self.route_methods.values():
            resource.add_cors_preflight(
                allow_origins=[origin],
                allow_methods=sorted(methods),
                allow_headers=list(cors.REQUEST_HEADERS),
                max_age=Duration.seconds(cors.MAX_AGE_SECONDS),
            )
        headers = {
            "gatewayresponse.header.Access-Control-Allow-Origin": Fn.join("", ["'", origin, "'"]),
            "gatewayresponse.header.Access-Control-Expose-Headers": f"'{','.join(cors.EXPOSED_HEADERS)}'",
        }
        for response in self.gateway_responses.values():
            response.node.default_child.add_property_override("ResponseParameters", headers)
        # Gateway responses take effect when the stage is deployed again, and CDK's deployment hash leaves
        # overrides out: without this, a changed origin or header list would never reach the stage.
        self.rest_api.latest_deployment.add_to_logical_id({"browserCors": headers})

    def _body_model(self, name: str, route: str) -> apigateway.Model:
        """The API Gateway model of the request body ``name`` (a clipline.api.schemas model), generated from it."""
        model = apigateway.Model(
            self,
            name.removesuffix("Body") + "Model",
            rest_api=self.rest_api,
            content_type=JSON,
            description=f"{route} body, generated from clipline's {name}",
            schema=apigateway.JsonSchema(schema=apigateway.JsonSchemaVersion.DRAFT4),
        )
        # The schema is clipline's own, already draft 4; passed through as it is rather than rebuilt as JsonSchema.
        schema = api_gateway_model(getattr(schemas, name))
        model.node.default_child.add_property_override("Schema", schema)
        # A deployment's logical id hashes only what CDK itself set, not the override above: without this a
        # changed model would update the Model resource but never be deployed to the stage.
        self.rest_api.latest_deployment.add_to_logical_id({f"{name}Model": schema})
        return model

    def metric_job_creations_blocked(self, *, period: Duration = Duration.minutes(5)) -> cloudwatch.Metric:
        """Requests the per-IP job creation rule blocked: WAF answers them, so API Gateway never counts them."""
        return cloudwatch.Metric(
            namespace="AWS/WAFV2",
            metric_name="BlockedRequests",
            dimensions_map={
                "WebACL": self.web_acl_metric_name,
                "Rule": self.rate_rule_metric_name,
                "Region": Stack.of(self).region,
            },
            statistic="Sum",
            period=period,
            label="job creations blocked by the per-IP rule",
        )

    def _job_creation_rate_rule(self, config: StageConfig) -> wafv2.CfnWebACL:
        job_creation = next(route for route in API_ROUTES if route.body_model == "CreateJobBody")
        metric_prefix = f"{config.name_prefix}-waf"
        # WAF's metrics are dimensioned by these names (WebACL, Rule); the dashboard reads them back.
        self.web_acl_metric_name = metric_prefix
        self.rate_rule_metric_name = f"{metric_prefix}-job-creations-per-ip"
        return wafv2.CfnWebACL(
            self,
            "WebAcl",
            # Named as its metric, so the WebACL dimension is the same whichever of the two WAF reports.
            name=metric_prefix,
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=metric_prefix, sampled_requests_enabled=True
            ),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="JobCreationsPerIp",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP",
                            limit=waf_rate_limit(config.job_creations_per_ip_per_minute),
                            evaluation_window_sec=WAF_EVALUATION_WINDOW_SECONDS,
                            scope_down_statement=_method_and_path(job_creation.method, job_creation.resource),
                        )
                    ),
                    visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                        cloud_watch_metrics_enabled=True,
                        metric_name=self.rate_rule_metric_name,
                        sampled_requests_enabled=True,
                    ),
                )
            ],
        )


# Applied in order to the path before matching: what API Gateway would route as /api/jobs must match
# however it is spelt (percent-encoded, in another case, with doubled slashes or dot segments).
PATH_TRANSFORMATIONS = ("URL_DECODE", "NORMALIZE_PATH", "LOWERCASE")


def _method_and_path(method: str, path: str) -> wafv2.CfnWebACL.StatementProperty:
    """Requests with ``method`` whose path contains ``path``.

    WAF sees the stage in the path (/prod/api/jobs), and a path ending in a slash
    (/prod/api/jobs/) still reaches the same method, so the path is matched anywhere
    rather than at its end. Only one route takes ``method``, so whatever else the
    match catches is a request API Gateway refuses anyway.
    """
    path_transformations = [
        wafv2.CfnWebACL.TextTransformationProperty(priority=priority, type=transformation)
        for priority, transformation in enumerate(PATH_TRANSFORMATIONS)
    ]
    return wafv2.CfnWebACL.StatementProperty(
        and_statement=wafv2.CfnWebACL.AndStatementProperty(
            statements=[
                wafv2.CfnWebACL.StatementProperty(
                    byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                        field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(method={}),
                        positional_constraint="EXACTLY",
                        search_string=method,
                        text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")],
                    )
                ),
                wafv2.CfnWebACL.StatementProperty(
                    byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                        field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                        positional_constraint="CONTAINS",
                        search_string=path.lower(),
                        text_transformations=path_transformations,
                    )
                ),
            ]
        )
    )
