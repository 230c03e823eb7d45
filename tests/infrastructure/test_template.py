"""The synthesized stacks have the properties the service relies on, read from the templates themselves.

Expected values come from where the service defines them (cdk.json, clipline.workflow,
the API routes, the metric catalog), never restated here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from clipline.api import schemas
from clipline.api.openapi import api_gateway_model
from clipline.api.routes import API_ROUTES
from clipline.domain.cleanup import JOBS_PREFIX, TRANSCRIPTS_PREFIX
from clipline.settings import Settings
from clipline.workflow import (
    ASR_QUEUE_PLACEHOLDER,
    ASR_WORKER_HANDLER,
    LAMBDA_SIZES,
    TASK_HANDLERS,
    placeholders,
    render_definition,
    timeout_substitutions,
)

from infra.storage import STREAM_RETRY_ATTEMPTS

from .conftest import CDK_CONTEXT, STAGES, Synthesis, stage_config

pytestmark = pytest.mark.slow

# Actions with no resource-level permissions, so "*" is the only resource IAM accepts for them.
ACTIONS_WITHOUT_RESOURCES = {
    # X-Ray, for active tracing on functions and the state machine.
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    # CloudWatch Logs vended delivery, which Step Functions logging sets up on the caller's behalf.
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    # Listing a table's streams is account-wide; the stream event source mapping's role needs it.
    "dynamodb:ListStreams",
}


# Helpers over the template JSON ------------------------------------------------------------


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def only(template: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    found = resources(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def function_named(template: dict[str, Any], stage: str, name: str) -> tuple[str, dict[str, Any]]:
    wanted = f"clipline-{stage}-{name}"
    for logical_id, function in resources(template, "AWS::Lambda::Function").items():
        if function["Properties"].get("FunctionName") == wanted:
            return logical_id, function["Properties"]
    raise AssertionError(f"no function {wanted}")


def logical_id_of_handler(template: dict[str, Any], stage: str, handler: str) -> str:
    name = next(name for name, size in LAMBDA_SIZES.items() if size.handler == handler)
    return function_named(template, stage, name)[0]


def statements_of_role(template: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    statements = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def role_of_function(function: dict[str, Any]) -> str:
    return function["Role"]["Fn::GetAtt"][0]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def env_name(field: str) -> str:
    return f"{Settings.model_config['env_prefix']}{field}".upper()


# Storage -------------------------------------------------------------------------------------


def test_the_jobs_table_is_on_demand_with_ttl_stream_and_point_in_time_recovery(template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )


def test_the_tables_removal_policy_follows_the_stage(synthesis: Synthesis) -> None:
    for stage in ("dev", "prod"):
        _, table = only(synthesis.templates[stage], "AWS::DynamoDB::Table")
        expected = "Delete" if stage_config(stage).removal_policy == "destroy" else "Retain"
        assert table["DeletionPolicy"] == expected, stage


def test_every_bucket_is_private_encrypted_and_refuses_plain_http(dev_template_json) -> None:
    buckets = resources(dev_template_json, "AWS::S3::Bucket")
    assert len(buckets) == 3  # artifacts, their access logs, and the console site
    for bucket in buckets.values():
        properties = bucket["Properties"]
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    denied_plain_http = [
        policy
        for policy in resources(dev_template_json, "AWS::S3::BucketPolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny" and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denied_plain_http) == 3


def test_lifecycle_rules_expire_job_artifacts_and_transcripts_after_retention_as_a_backstop(
    dev_template_json,
) -> None:
    config = stage_config("dev")
    artifacts = next(
        bucket["Properties"]
        for bucket in resources(dev_template_json, "AWS::S3::Bucket").values()
        if "LoggingConfiguration" in bucket["Properties"]
    )
    rules = {rule.get("Prefix"): rule for rule in artifacts["LifecycleConfiguration"]["Rules"]}
    for prefix in (JOBS_PREFIX, TRANSCRIPTS_PREFIX):
        assert rules[prefix]["Status"] == "Enabled"
        assert rules[prefix]["ExpirationInDays"] == config.artifact_expiry_days
        # The backstop never fires before the records' own expiry.
        assert rules[prefix]["ExpirationInDays"] > config.retention_days


def test_the_stream_handler_reports_partial_failures_bisects_retries_boundedly_and_parks_failures(
    template, dev_template_json
) -> None:
    handler = logical_id_of_handler(dev_template_json, "dev", LAMBDA_SIZES["RemoveExpiredArtifacts"].handler)
    parked = _queue(dev_template_json, "StorageExpiryFailures")
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": handler},
            "EventSourceArn": {"Fn::GetAtt": [only(dev_template_json, "AWS::DynamoDB::Table")[0], "StreamArn"]},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": STREAM_RETRY_ATTEMPTS,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [parked, "Arn"]}}},
            "FilterCriteria": {"Filters": [{"Pattern": json.dumps({"eventName": ["REMOVE"]}, separators=(",", ":"))}]},
        },
    )


def _queue(template: dict[str, Any], construct_path: str) -> str:
    return next(name for name in resources(template, "AWS::SQS::Queue") if name.startswith(construct_path))


# Functions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_function_is_python_312_x86_64_sized_by_the_table_and_the_stages_overrides(
    synthesis: Synthesis, stage: str
) -> None:
    config = stage_config(stage)
    template = synthesis.templates[stage]
    for name in LAMBDA_SIZES:
        _, function = function_named(template, stage, name)
        assert function["Runtime"] == "python3.12", name
        assert function["Architectures"] == ["x86_64"], name
        assert function["MemorySize"] == config.memory_mb_of(name), name
        assert function["Timeout"] == config.timeout_seconds_of(name), name
        assert function["EphemeralStorage"] == {"Size": config.ephemeral_storage_mb_of(name)}, name
        assert function["TracingConfig"] == {"Mode": "Active"}, name
        assert function["Handler"] == f"{LAMBDA_SIZES[name].handler}.lambda_handler", name


def test_a_stage_override_changes_only_the_function_it_names(synthesis: Synthesis) -> None:
    override = stage_config("prod").functions["ClipSource"]
    _, clip = function_named(synthesis.templates["prod"], "prod", "ClipSource")
    _, dev_clip = function_named(synthesis.templates["dev"], "dev", "ClipSource")
    assert clip["MemorySize"] == override.memory_mb != LAMBDA_SIZES["ClipSource"].memory_mb
    assert clip["EphemeralStorage"] == {"Size": override.ephemeral_storage_mb}
    assert dev_clip["MemorySize"] == LAMBDA_SIZES["ClipSource"].memory_mb


def test_a_tasks_lambda_timeout_is_its_states_timeout(dev_template_json) -> None:
    substitutions = timeout_substitutions(stage_config("dev"))
    for name, size in LAMBDA_SIZES.items():
        if size.timeout_placeholder:
            _, function = function_named(dev_template_json, "dev", name)
            assert function["Timeout"] == int(substitutions[size.timeout_placeholder]), name


def test_functions_read_their_settings_from_clipline_settings_keys(dev_template_json) -> None:
    known = {env_name(field) for field in Settings.model_fields}
    for name, size in LAMBDA_SIZES.items():
        _, function = function_named(dev_template_json, "dev", name)
        variables = function["Environment"]["Variables"]
        assert set(variables) <= known, name
        assert variables[env_name("mode")] == "aws"
        assert variables[env_name("jobs_table")] == {"Ref": only(dev_template_json, "AWS::DynamoDB::Table")[0]}
        assert variables[env_name("asr_provider")] == "transcribe"
        assert (env_name("state_machine_arn") in variables) == (name in ("CreateJob", "DeleteJob")), name
        assert (variables.get(env_name("ffmpeg")) == "/opt/bin/ffmpeg") == size.uses_ffmpeg, name


def test_ffmpeg_functions_have_the_ffmpeg_layer_and_all_have_the_dependencies_layer(dev_template_json) -> None:
    layers = resources(dev_template_json, "AWS::Lambda::LayerVersion")
    ffmpeg = next(name for name in layers if name.startswith("FfmpegLayer"))
    dependencies = next(name for name in layers if "Dependencies" in name)
    for name, size in LAMBDA_SIZES.items():
        _, function = function_named(dev_template_json, "dev", name)
        attached = {layer["Ref"] for layer in function["Layers"]}
        assert dependencies in attached, name
        assert (ffmpeg in attached) == size.uses_ffmpeg, name


def test_the_whisper_stage_runs_the_worker_from_its_image(synthesis: Synthesis) -> None:
    _, worker = function_named(synthesis.templates["whisper"], "whisper", "TranscribeClip")
    assert worker["PackageType"] == "Image"
    assert worker["Architectures"] == ["x86_64"]
    assert "Runtime" not in worker and "Layers" not in worker
    assert worker["MemorySize"] == stage_config("whisper").memory_mb_of("TranscribeClip")
    assert worker["Environment"]["Variables"][env_name("asr_provider")] == "whisper"
    _, probe = function_named(synthesis.templates["whisper"], "whisper", "ProbeSource")
    assert probe["Runtime"] == "python3.12"


def test_the_openai_stage_reads_its_key_from_secrets_manager_at_run_time(synthesis: Synthesis) -> None:
    template = synthesis.templates["openai"]
    _, worker = function_named(template, "openai", "TranscribeClip")
    variables = worker["Environment"]["Variables"]
    secret_name = stage_config("openai").openai_secret_name
    # The worker is told where the key is, never the key itself
    assert variables[env_name("openai_api_key_secret")] == secret_name
    assert env_name("openai_api_key") not in variables
    assert "resolve:secretsmanager" not in json.dumps(template)
    # And only the worker may read that secret
    reads = [
        s for s in statements_of_role(template, role_of_function(worker))
        if "secretsmanager:GetSecretValue" in as_list(s["Action"])
    ]  # fmt: skip
    assert len(reads) == 1 and f"secret:{secret_name}-??????" in json.dumps(reads[0]["Resource"])
    for name in ("CreateJob", "ClipSource", "FailJob"):
        _, other = function_named(template, "openai", name)
        assert not any(
            "secretsmanager:GetSecretValue" in as_list(s["Action"])
            for s in statements_of_role(template, role_of_function(other))
        ), name


@pytest.mark.parametrize("stage", STAGES)
def test_only_the_transcribe_stage_may_call_amazon_transcribe(synthesis: Synthesis, stage: str) -> None:
    template = synthesis.templates[stage]
    _, worker = function_named(template, stage, "TranscribeClip")
    statements = statements_of_role(template, role_of_function(worker))
    transcribe = [s for s in statements if any(a.startswith("transcribe:") for a in as_list(s["Action"]))]
    if stage_config(stage).asr_provider != "transcribe":
        assert transcribe == []
        return
    assert len(transcribe) == 1
    assert set(as_list(transcribe[0]["Action"])) == {
        "transcribe:StartTranscriptionJob",
        "transcribe:GetTranscriptionJob",
        "transcribe:DeleteTranscriptionJob",
    }
    assert "transcription-job/*" in json.dumps(transcribe[0]["Resource"])


# Queue ---------------------------------------------------------------------------------------


def test_the_asr_queue_outlives_its_worker_and_dead_letters_after_bounded_deliveries(dev_template_json) -> None:
    config = stage_config("dev")
    queues = resources(dev_template_json, "AWS::SQS::Queue")
    requests = next(q["Properties"] for name, q in queues.items() if name.startswith("AsrQueueRequests"))
    dead_letters = next(name for name in queues if name.startswith("AsrQueueDeadLetters"))
    _, worker = function_named(dev_template_json, "dev", "TranscribeClip")
    assert requests["VisibilityTimeout"] > worker["Timeout"]
    assert requests["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dead_letters, "Arn"]},
        "maxReceiveCount": config.asr_max_receive_count,
    }
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_the_worker_takes_one_message_at_a_time_with_bounded_concurrency(template, dev_template_json) -> None:
    worker = logical_id_of_handler(dev_template_json, "dev", ASR_WORKER_HANDLER)
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": worker},
            "BatchSize": 1,
            "ScalingConfig": {"MaximumConcurrency": stage_config("dev").asr_max_concurrency},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )


# Pipeline ------------------------------------------------------------------------------------


def test_the_state_machine_logs_traces_and_fills_every_placeholder(synthesis: Synthesis, dev_template_json) -> None:
    _, machine = only(dev_template_json, "AWS::StepFunctions::StateMachine")
    properties = machine["Properties"]
    assert properties["LoggingConfiguration"]["Level"] in {"ERROR", "ALL"}
    assert properties["TracingConfiguration"] == {"Enabled": True}
    substitutions = properties["DefinitionSubstitutions"]
    assert set(substitutions) == placeholders()

    # The definition CloudFormation substitutes into is the file itself, shipped as an asset.
    asset_key = properties["DefinitionS3Location"]["Key"]
    definition = (synthesis.outdir / f"asset.{asset_key}").read_text("utf-8")
    assert set(re.findall(r"\$\{(\w+)\}", definition)) <= set(substitutions)
    # Tokens stand in for the ARNs and URL CloudFormation resolves; the rest must render to valid JSON.
    rendered = render_definition(
        {key: value if isinstance(value, str) else "token" for key, value in substitutions.items()}
    )
    assert "${" not in rendered


def test_the_state_machines_substitutions_are_the_functions_queue_and_stage_timeouts(dev_template_json) -> None:
    _, machine = only(dev_template_json, "AWS::StepFunctions::StateMachine")
    substitutions = machine["Properties"]["DefinitionSubstitutions"]
    for placeholder, handler in TASK_HANDLERS.items():
        function = logical_id_of_handler(dev_template_json, "dev", handler)
        assert substitutions[placeholder] == {"Fn::GetAtt": [function, "Arn"]}
    assert substitutions[ASR_QUEUE_PLACEHOLDER] == {"Ref": _queue(dev_template_json, "AsrQueueRequests")}
    for placeholder, seconds in timeout_substitutions(stage_config("dev")).items():
        assert substitutions[placeholder] == seconds


def test_the_state_machine_may_invoke_exactly_its_tasks_and_send_to_the_asr_queue(dev_template_json) -> None:
    name, machine = only(dev_template_json, "AWS::StepFunctions::StateMachine")
    statements = statements_of_role(dev_template_json, machine["Properties"]["RoleArn"]["Fn::GetAtt"][0])
    invoked = {
        json.dumps(resource)
        for statement in statements
        if "lambda:InvokeFunction" in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    tasks = [logical_id_of_handler(dev_template_json, "dev", handler) for handler in TASK_HANDLERS.values()]
    expected = {json.dumps({"Fn::GetAtt": [task, "Arn"]}) for task in tasks} | {
        json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [task, "Arn"]}, ":*"]]}) for task in tasks
    }
    assert invoked == expected
    queue = {"Fn::GetAtt": [_queue(dev_template_json, "AsrQueueRequests"), "Arn"]}
    assert any("sqs:SendMessage" in as_list(s["Action"]) and s["Resource"] == queue for s in statements)


def test_the_worker_answers_the_state_machine_by_task_token(dev_template_json) -> None:
    machine, _ = only(dev_template_json, "AWS::StepFunctions::StateMachine")
    _, worker = function_named(dev_template_json, "dev", "TranscribeClip")
    statements = statements_of_role(dev_template_json, role_of_function(worker))
    callback = next(s for s in statements if "states:SendTaskSuccess" in as_list(s["Action"]))
    assert set(as_list(callback["Action"])) >= {
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "states:SendTaskHeartbeat",
    }
    assert callback["Resource"] == {"Ref": machine}


def test_only_create_job_may_start_executions(dev_template_json) -> None:
    machine, _ = only(dev_template_json, "AWS::StepFunctions::StateMachine")
    starters = set()
    for name in LAMBDA_SIZES:
        _, function = function_named(dev_template_json, "dev", name)
        for statement in statements_of_role(dev_template_json, role_of_function(function)):
            if "states:StartExecution" in as_list(statement["Action"]):
                assert statement["Resource"] == {"Ref": machine}
                starters.add(name)
    assert starters == {"CreateJob"}


def test_only_delete_job_may_stop_executions_and_only_this_state_machines(dev_template_json) -> None:
    machine, _ = only(dev_template_json, "AWS::StepFunctions::StateMachine")
    stoppers = set()
    for name in LAMBDA_SIZES:
        _, function = function_named(dev_template_json, "dev", name)
        for statement in statements_of_role(dev_template_json, role_of_function(function)):
            if "states:StopExecution" in as_list(statement["Action"]):
                assert as_list(statement["Action"]) == ["states:StopExecution"]
                assert machine in json.dumps(statement["Resource"]) and ":execution:" in json.dumps(statement["Resource"])
                stoppers.add(name)
    assert stoppers == {"DeleteJob"}


def test_executions_that_end_early_are_recorded_by_the_execution_end_handler(template, dev_template_json) -> None:
    machine, _ = only(dev_template_json, "AWS::StepFunctions::StateMachine")
    handler = logical_id_of_handler(dev_template_json, "dev", LAMBDA_SIZES["RecordExecutionEnd"].handler)
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.states"],
                "detail-type": ["Step Functions Execution Status Change"],
                "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [{"Ref": machine}]},
            },
            "Targets": [
                {
                    "Arn": {"Fn::GetAtt": [handler, "Arn"]},
                    "Id": "Target0",
                    "RetryPolicy": {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 7200},
                    "DeadLetterConfig": {
                        "Arn": {"Fn::GetAtt": [_queue(dev_template_json, "PipelineExecutionEndDeadLetters"), "Arn"]}
                    },
                }
            ],
        },
    )


def test_execution_end_events_eventbridge_cannot_deliver_are_kept_encrypted_and_alarmed(dev_template_json) -> None:
    dead_letters = _queue(dev_template_json, "PipelineExecutionEndDeadLetters")
    queue = resources(dev_template_json, "AWS::SQS::Queue")[dead_letters]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    policies = [
        policy["Properties"] for policy in resources(dev_template_json, "AWS::SQS::QueuePolicy").values()
        if {"Ref": dead_letters} in policy["Properties"]["Queues"]
    ]  # fmt: skip
    statements = [statement for policy in policies for statement in policy["PolicyDocument"]["Statement"]]
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )
    # EventBridge itself may send to it, for this rule only
    (rule_name,) = resources(dev_template_json, "AWS::Events::Rule")
    assert any(
        s["Effect"] == "Allow" and s["Principal"] == {"Service": "events.amazonaws.com"}
        and s["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": [rule_name, "Arn"]}
        for s in statements
    )  # fmt: skip
    topic, _ = only(dev_template_json, "AWS::SNS::Topic")
    dimension = {"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letters, "QueueName"]}}
    (alarm,) = [
        a["Properties"] for a in resources(dev_template_json, "AWS::CloudWatch::Alarm").values()
        if dimension in a["Properties"].get("Dimensions", [])
    ]  # fmt: skip
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": topic}]


# API -----------------------------------------------------------------------------------------


def test_every_route_is_a_lambda_proxy_method_that_requires_an_api_key(dev_template_json) -> None:
    all_methods = resources(dev_template_json, "AWS::ApiGateway::Method")
    # OPTIONS answers the console's CORS preflights, without a key; tests/infrastructure/test_console_resources.py.
    methods = {name: m for name, m in all_methods.items() if m["Properties"]["HttpMethod"] != "OPTIONS"}
    assert methods
    for method in methods.values():
        assert method["Properties"]["ApiKeyRequired"] is True
    integrations = {
        (m["Properties"]["HttpMethod"], json.dumps(m["Properties"]["Integration"]["Uri"])) for m in methods.values()
    }
    for route in API_ROUTES:
        function = logical_id_of_handler(dev_template_json, "dev", route.handler)
        assert any(verb == route.method and f'"{function}"' in uri for verb, uri in integrations), route


def test_each_body_is_validated_against_clipline_s_own_model(dev_template_json) -> None:
    models = resources(dev_template_json, "AWS::ApiGateway::Model")
    by_schema = {json.dumps(model["Properties"]["Schema"], sort_keys=True): name for name, model in models.items()}
    validator_name, validator = only(dev_template_json, "AWS::ApiGateway::RequestValidator")
    assert validator["Properties"]["ValidateRequestBody"] is True
    methods = resources(dev_template_json, "AWS::ApiGateway::Method").values()
    with_models = [m["Properties"] for m in methods if "RequestModels" in m["Properties"]]
    # Job creation and upload creation have bodies, each its own model; the other routes take none
    expected = {
        (route.method, route.body_model): by_schema[json.dumps(api_gateway_model(getattr(schemas, route.body_model)), sort_keys=True)]
        for route in API_ROUTES
        if route.body_model
    }
    assert len(expected) == len(models) == len(with_models) == 2
    for method in with_models:
        assert method["RequestValidatorId"] == {"Ref": validator_name}
        (model_ref,) = method["RequestModels"].values()
        assert (method["HttpMethod"], model_ref["Ref"]) in {(verb, name) for (verb, _), name in expected.items()}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_usage_plans_carry_the_stages_throttle_and_quota(synthesis: Synthesis, stage: str) -> None:
    plans = {
        plan["Properties"]["UsagePlanName"]: plan["Properties"]
        for plan in resources(synthesis.templates[stage], "AWS::ApiGateway::UsagePlan").values()
    }
    configured = stage_config(stage).usage_plans
    assert {"default", "pro"} <= set(configured)
    assert set(plans) == {f"clipline-{stage}-{name}" for name in configured}
    for name, plan in configured.items():
        properties = plans[f"clipline-{stage}-{name}"]
        assert properties["Throttle"] == {"RateLimit": plan.rate_limit, "BurstLimit": plan.burst_limit}
        assert properties["Quota"] == {"Limit": plan.quota_limit, "Period": plan.quota_period}
        assert len(properties["ApiStages"]) == 1


def test_the_stage_throttles_traces_and_writes_json_access_logs(dev_template_json) -> None:
    config = stage_config("dev")
    _, stage = only(dev_template_json, "AWS::ApiGateway::Stage")
    properties = stage["Properties"]
    assert properties["TracingEnabled"] is True
    assert properties["MethodSettings"][0]["ThrottlingRateLimit"] == config.api_rate_limit
    assert properties["MethodSettings"][0]["ThrottlingBurstLimit"] == config.api_burst_limit
    access_log = json.loads(properties["AccessLogSetting"]["Format"])
    assert access_log["requestId"] == "$context.requestId"
    assert "DestinationArn" in properties["AccessLogSetting"]


def test_api_gateways_own_refusals_use_clipline_s_error_envelope(dev_template_json) -> None:
    responses = {
        response["Properties"]["ResponseType"]: response["Properties"]
        for response in resources(dev_template_json, "AWS::ApiGateway::GatewayResponse").values()
    }
    expected = {
        "DEFAULT_4XX": "VALIDATION_FAILED",
        "DEFAULT_5XX": "INTERNAL_ERROR",
        "THROTTLED": "TOO_MANY_REQUESTS",
        "QUOTA_EXCEEDED": "QUOTA_EXCEEDED",
        "API_CONFIGURATION_ERROR": "INTERNAL_ERROR",
        "BAD_REQUEST_BODY": "VALIDATION_FAILED",
        "MISSING_AUTHENTICATION_TOKEN": "NOT_FOUND",
        "INVALID_API_KEY": "FORBIDDEN",
        "UNAUTHORIZED": "FORBIDDEN",
        "EXPIRED_TOKEN": "FORBIDDEN",
        "INVALID_SIGNATURE": "FORBIDDEN",
        "UNSUPPORTED_MEDIA_TYPE": "UNSUPPORTED_MEDIA_TYPE",
    }
    for response_type, code in expected.items():
        template = responses[response_type]["ResponseTemplates"]["application/json"]
        # Fill the VTL variables as API Gateway would, then read the envelope back.
        filled = template.replace("$context.error.messageString", '"refused"').replace(
            '"$context.error.validationErrorString"', '"[field]"'
        ).replace("$context.requestId", "request-1")
        envelope = json.loads(filled)["error"]
        assert (envelope["code"], envelope["correlationId"]) == (code, "request-1"), response_type
        assert set(envelope) == {"code", "message", "correlationId"}
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    assert responses["THROTTLED"]["StatusCode"] == "429"
    for refused in ("UNAUTHORIZED", "EXPIRED_TOKEN", "INVALID_SIGNATURE"):
        assert responses[refused]["StatusCode"] == "403", refused
    assert responses["UNSUPPORTED_MEDIA_TYPE"]["StatusCode"] == "415"


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_owns_api_gateways_account_wide_logging_role(synthesis: Synthesis, stage: str) -> None:
    # One AWS::ApiGateway::Account per account and region: a stage that owned it would remove it on destroy.
    template = synthesis.templates[stage]
    assert resources(template, "AWS::ApiGateway::Account") == {}
    assert not [
        name for name, role in resources(template, "AWS::IAM::Role").items()
        if "AmazonAPIGatewayPushToCloudWatchLogs" in json.dumps(role["Properties"].get("ManagedPolicyArns", []))
    ]  # fmt: skip
    assert CDK_CONTEXT["@aws-cdk/aws-apigateway:disableCloudWatchRole"] is True


def test_a_waf_rate_rule_per_ip_guards_job_creation_on_the_stage(dev_template_json) -> None:
    from infra.api import waf_rate_limit

    acl_name, acl = only(dev_template_json, "AWS::WAFv2::WebACL")
    assert acl["Properties"]["Scope"] == "REGIONAL"
    (rule,) = acl["Properties"]["Rules"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert rate["AggregateKeyType"] == "IP"
    assert rate["Limit"] == waf_rate_limit(stage_config("dev").job_creations_per_ip_per_minute)
    assert rate["EvaluationWindowSec"] == 60
    assert "Block" in rule["Action"]
    scope_down = rate["ScopeDownStatement"]
    # Only job creation is counted, however its path is spelt
    for path in ["/dev/api/jobs", "/dev/api/jobs/", "/dev/API/Jobs", "/dev/api/%6Aobs/", "/dev//api//jobs",
                 "/dev/api/./jobs"]:  # fmt: skip
        assert _waf_matches(scope_down, "POST", path), path
    for method, path in [("GET", "/dev/api/jobs/0123"), ("GET", "/dev/api/jobs"), ("POST", "/dev/api/other")]:
        assert not _waf_matches(scope_down, method, path), (method, path)
    _, association = only(dev_template_json, "AWS::WAFv2::WebACLAssociation")
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_name, "Arn"]}
    stage_name, _ = only(dev_template_json, "AWS::ApiGateway::Stage")
    assert {"Ref": stage_name} in association["Properties"]["ResourceArn"]["Fn::Join"][1]


def _waf_transform(value: str, transformations: list[dict[str, Any]]) -> str:
    """WAF's text transformations this stack uses, applied in priority order."""
    from urllib.parse import unquote

    for transformation in sorted(transformations, key=lambda t: t["Priority"]):
        kind = transformation["Type"]
        if kind == "URL_DECODE":
            value = unquote(value)
        elif kind == "LOWERCASE":
            value = value.lower()
        elif kind == "NORMALIZE_PATH":  # collapse repeated slashes and resolve dot segments
            segments: list[str] = []
            for segment in re.sub("/+", "/", value).split("/"):
                if segment == "..":
                    segments = segments[:-1] if len(segments) > 1 else segments
                elif segment != ".":
                    segments.append(segment)
            value = "/".join(segments)
        elif kind != "NONE":
            raise AssertionError(f"no model of the {kind} transformation; add one")
    return value


def _waf_matches(statement: dict[str, Any], method: str, path: str) -> bool:
    """Whether a request matches a scope-down statement made of AND and byte matches (all this stack uses)."""
    if "AndStatement" in statement:
        return all(_waf_matches(inner, method, path) for inner in statement["AndStatement"]["Statements"])
    match = statement["ByteMatchStatement"]
    field = match["FieldToMatch"]
    value = _waf_transform(method if "Method" in field else path, match["TextTransformations"])
    wanted = match["SearchString"]
    return {
        "EXACTLY": value == wanted,
        "STARTS_WITH": value.startswith(wanted),
        "ENDS_WITH": value.endswith(wanted),
        "CONTAINS": wanted in value,
    }[match["PositionalConstraint"]]


def test_the_waf_limit_maps_per_minute_settings_and_respects_wafs_floor() -> None:
    from infra.api import waf_rate_limit

    assert waf_rate_limit(60) == 60
    assert waf_rate_limit(3) == 10


# IAM -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_no_statement_grants_every_resource_unless_its_actions_have_no_resource_level_permissions(
    synthesis: Synthesis, stage: str
) -> None:
    for name, policy in resources(synthesis.templates[stage], "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "*" in as_list(statement["Resource"]):
                assert set(as_list(statement["Action"])) <= ACTIONS_WITHOUT_RESOURCES, (name, statement)


# What grant_read_data gives: reads, and DescribeTable to find the table.
DYNAMODB_READS = {
    f"dynamodb:{action}"
    for action in ("BatchGetItem", "GetRecords", "GetShardIterator", "Query", "GetItem", "Scan",
                   "ConditionCheckItem", "DescribeTable")
}  # fmt: skip
S3_READS = {"s3:GetObject*", "s3:GetBucket*", "s3:List*"}


def _function_actions(template: dict[str, Any], stage: str, name: str) -> set[str]:
    _, function = function_named(template, stage, name)
    return {
        action
        for statement in statements_of_role(template, role_of_function(function))
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_status_route_only_reads_jobs_and_the_result_route_also_reads_artifacts(
    synthesis: Synthesis, stage: str
) -> None:
    template = synthesis.templates[stage]
    get_job = _function_actions(template, stage, "GetJob")
    assert {"dynamodb:GetItem"} <= {a for a in get_job if a.startswith("dynamodb:")} <= DYNAMODB_READS
    assert not [a for a in get_job if a.startswith("s3:")]

    get_result = _function_actions(template, stage, "GetJobResult")
    assert {"dynamodb:GetItem"} <= {a for a in get_result if a.startswith("dynamodb:")} <= DYNAMODB_READS
    # Presigned GetObject links are only as good as the signer's own permission.
    assert "s3:GetObject*" in get_result
    assert {a for a in get_result if a.startswith("s3:")} <= S3_READS
    # The pipeline's functions still write
    assert "dynamodb:PutItem" in _function_actions(template, stage, "FinalizeJob")


# Monitoring and outputs ----------------------------------------------------------------------


def test_alarms_watch_failures_dead_letters_server_errors_and_asr_timeouts_and_notify_sns(dev_template_json) -> None:
    topic, _ = only(dev_template_json, "AWS::SNS::Topic")
    alarms = resources(dev_template_json, "AWS::CloudWatch::Alarm")
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]
    text = json.dumps(alarms)
    dead_letters = _queue(dev_template_json, "AsrQueueDeadLetters")
    by_metric = {
        a["Properties"].get("MetricName"): a["Properties"] for a in alarms.values() if "MetricName" in a["Properties"]
    }
    asr_timeouts = by_metric["AsrTranscriptions"]
    assert asr_timeouts["Namespace"] == "clipline"
    assert {"Name": "status", "Value": "timeout"} in asr_timeouts["Dimensions"]
    assert {"Name": "service", "Value": "clipline"} in asr_timeouts["Dimensions"]
    assert by_metric["5XXError"]["Threshold"] == 0.01
    assert any(
        a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and {"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letters, "QueueName"]}} in a["Properties"]["Dimensions"]
        for a in alarms.values()
    )
    for code in ("INTERNAL_ERROR", "STORAGE_FAILURE", "CLIP_TIMEOUT"):
        assert json.dumps({"Name": "errorCode", "Value": code}) in text
    assert "ExecutionsTimedOut" in text and "ExecutionsAborted" in text


def test_an_alarm_fires_while_asr_requests_wait_half_their_heartbeat(dev_template_json) -> None:
    from infra.monitoring import asr_queue_wait_threshold_seconds

    config = stage_config("dev")
    topic, _ = only(dev_template_json, "AWS::SNS::Topic")
    requests = _queue(dev_template_json, "AsrQueueRequests")
    (alarm,) = [
        a["Properties"] for a in resources(dev_template_json, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage"
    ]  # fmt: skip
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [requests, "QueueName"]}}]
    assert alarm["Statistic"] == "Maximum"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == asr_queue_wait_threshold_seconds(config) == config.asr_heartbeat_seconds / 2
    assert alarm["Period"] <= alarm["Threshold"] * 2
    assert alarm["AlarmActions"] == [{"Ref": topic}]


def _dashboard_widgets(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The dashboard's metric widgets by title, with CloudFormation's values written as the JSON of their token."""
    _, dashboard = only(template, "AWS::CloudWatch::Dashboard")
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else json.dumps(part).replace('"', "'") for part in parts)
    widgets = json.loads(text)["widgets"]
    return {widget["properties"]["title"]: widget["properties"] for widget in widgets if widget["type"] == "metric"}


def test_the_dashboard_shows_the_asr_queues_wait_and_the_wafs_blocked_job_creations(dev_template_json) -> None:
    widgets = _dashboard_widgets(dev_template_json)
    queue_metrics = widgets["ASR queue depth"]["metrics"]
    requests = json.dumps({"Fn::GetAtt": [_queue(dev_template_json, "AsrQueueRequests"), "QueueName"]})
    assert ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", requests.replace('"', "'")] in [
        metric[:4] for metric in queue_metrics
    ]

    # The local gateway's own metric has no data in AWS; WAF's count of the rule's blocks has.
    assert "RateLimitRefusals" not in json.dumps(widgets)
    _, acl = only(dev_template_json, "AWS::WAFv2::WebACL")
    (rule,) = acl["Properties"]["Rules"]
    acl_metric = acl["Properties"]["VisibilityConfig"]["MetricName"]
    assert acl["Properties"]["Name"] == acl_metric
    (blocked,) = widgets["Job creations blocked by the per-IP rate rule"]["metrics"]
    namespace, name, *dimensions, options = blocked
    assert (namespace, name, options["stat"]) == ("AWS/WAFV2", "BlockedRequests", "Sum")
    assert dict(zip(dimensions[::2], dimensions[1::2])) == {
        "WebACL": acl_metric,
        "Rule": rule["VisibilityConfig"]["MetricName"],
        "Region": json.dumps({"Ref": "AWS::Region"}).replace('"', "'"),
    }


def test_the_dashboard_shows_the_catalog_metrics_queue_depth_and_api_errors(dev_template_json) -> None:
    _, dashboard = only(dev_template_json, "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("JobsCreated", "JobsSucceeded", "JobsFailed", "JobDuration", "AsrLatency", "FfmpegFallback",
                   "ApiRequests", "ApproximateNumberOfMessagesVisible", "4XXError", "5XXError"):  # fmt: skip
        assert metric in body, metric


def test_the_stack_outputs_what_deploy_md_uses(dev_template_json) -> None:
    assert {"ApiUrl", "StateMachineArn", "StateMachineName", "JobsTableName", "ArtifactsBucketName",
            "DashboardName", "AlarmTopicArn", "DefaultUsagePlanId", "WebhookSecretsPrefix",
            "ProUsagePlanId"} <= set(dev_template_json["Outputs"])  # fmt: skip


# Stage configuration (no synthesis) ----------------------------------------------------------


def test_stage_config_refuses_unknown_functions_and_a_timeout_a_state_owns() -> None:
    from pydantic import ValidationError

    from infra.config import StageConfig

    with pytest.raises(ValidationError, match="unknown"):
        StageConfig(functions={"ClipSorce": {"memory_mb": 1024}})
    with pytest.raises(ValidationError, match="clip_timeout_seconds|timeout follows"):
        StageConfig(functions={"ClipSource": {"timeout_seconds": 300}})
    with pytest.raises(ValidationError, match="default"):
        StageConfig(usage_plans={"pro": {"rate_limit": 1, "burst_limit": 1, "quota_limit": 1}})
    with pytest.raises(ValidationError, match="Lambda allows"):
        StageConfig(clip_timeout_seconds=3600)
    with pytest.raises(ValidationError):
        StageConfig(retention_dayz=3)


def test_stage_config_refuses_an_asr_concurrency_sqs_event_sources_refuse() -> None:
    from pydantic import ValidationError

    from infra.config import StageConfig

    with pytest.raises(ValidationError, match="asr_max_concurrency"):
        StageConfig(asr_max_concurrency=1)
    assert StageConfig(asr_max_concurrency=2).asr_max_concurrency == 2


def test_the_shipped_stages_run_enough_transcriptions_at_once() -> None:
    # With 2, a third transcription waits and may spend its whole heartbeat in the queue.
    for stage in CDK_CONTEXT["stages"]:
        assert stage_config(stage).asr_max_concurrency >= 5, stage


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda route: f"{route.method} {route.resource}")
def test_stage_config_refuses_an_api_function_timeout_beyond_api_gateways_29_seconds(route) -> None:
    from pydantic import ValidationError

    from infra.config import StageConfig

    name = next(name for name, size in LAMBDA_SIZES.items() if size.handler == route.handler)
    assert StageConfig(functions={name: {"timeout_seconds": 29}}).timeout_seconds_of(name) == 29
    with pytest.raises(ValidationError, match="API Gateway gives up after 29 s"):
        StageConfig(functions={name: {"timeout_seconds": 30}})
    # Functions behind no route may run longer
    assert StageConfig(functions={"RecordExecutionEnd": {"timeout_seconds": 60}})
