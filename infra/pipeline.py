"""The state machine, from ``pipeline.asl.json`` itself, and the rule that records executions ending early."""

from __future__ import annotations

from importlib import resources

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

import clipline.workflow as workflow

from . import acknowledge, dead_letter_queue
from .config import StageConfig

DEFINITION_FILE = "pipeline.asl.json"
# Statuses of executions that end without reaching FailJob, so no task recorded the job's end.
EXECUTION_END_STATUSES = ["FAILED", "TIMED_OUT", "ABORTED"]
EXECUTION_END_RETRY_ATTEMPTS = 4
EXECUTION_END_MAX_EVENT_AGE = Duration.hours(2)


def definition_path() -> str:
    return str(resources.files(workflow).joinpath(DEFINITION_FILE))


def definition_substitutions(
    config: StageConfig, task_functions: dict[str, lambda_.IFunction], asr_queue: sqs.IQueue
) -> dict[str, str]:
    """A value for every ``${...}`` in the definition: task ARNs, the ASR queue URL and the timeouts."""
    return {
        **{placeholder: function.function_arn for placeholder, function in task_functions.items()},
        workflow.ASR_QUEUE_PLACEHOLDER: asr_queue.queue_url,
        **workflow.timeout_substitutions(config),
    }


class Pipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        task_functions: dict[str, lambda_.IFunction],
        asr_queue: sqs.IQueue,
        execution_end_handler: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"/aws/vendedlogs/states/{config.name_prefix}-pipeline",
            retention=logs.RetentionDays[config.log_retention],
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{config.name_prefix}-pipeline",
            # The one definition; CloudFormation fills its placeholders, as render_definition does locally.
            # The global timeout is the definition's own TimeoutSeconds (JobTimeoutSeconds).
            definition_body=sfn.DefinitionBody.from_file(definition_path()),
            definition_substitutions=definition_substitutions(config, task_functions, asr_queue),
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            # Payloads are ids and keys only (never media), so full execution data is safe and useful.
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )

        # Tracing (xray:Put*) and log delivery (logs:CreateLogDelivery, ...) take no resource.
        acknowledge(
            self.state_machine,
            "AwsSolutions-IAM5",
            "X-Ray and CloudWatch Logs delivery actions have no resource-level permissions.",
            "Resource::*",
        )

        # An event EventBridge could not deliver after its retries is a job that would stay "running" until
        # it expires; kept here (and alarmed on) so someone can record it by hand.
        self.execution_end_dead_letters = dead_letter_queue(self, "ExecutionEndDeadLetters")
        # It is the end of the line: nothing consumes it automatically, so nothing could dead-letter from it.
        acknowledge(
            self.execution_end_dead_letters,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the execution-end rule's Lambda target.",
        )
        events.Rule(
            self,
            "ExecutionEnded",
            description="Executions that ended without reaching FailJob: record the job's failure.",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": EXECUTION_END_STATUSES,
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                },
            ),
            targets=[
                targets.LambdaFunction(
                    execution_end_handler,
                    retry_attempts=EXECUTION_END_RETRY_ATTEMPTS,
                    max_event_age=EXECUTION_END_MAX_EVENT_AGE,
                    dead_letter_queue=self.execution_end_dead_letters,
                )
            ],
        )
