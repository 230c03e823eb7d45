"""The dashboard and alarms of docs/operations.md, with clipline's metrics taken from its catalog."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from clipline.domain import errors
from clipline.metric_catalog import METRICS, NAMESPACE
from clipline.observability import SERVICE

from . import acknowledge
from .config import StageConfig

# Every clipline metric carries the service dimension besides its own (Powertools' single_metric).
SERVICE_DIMENSION = "service"
SUM_PERIOD = Duration.minutes(5)
# Failures that are ours to fix; source errors are the callers' and page nobody (docs/operations.md).
OUR_FAILURE_CODES = tuple(
    sorted(
        {
            errors.InternalError.code,
            errors.StorageFailureError.code,
            errors.ClipFailedError.code,
            errors.ClipTimeoutError.code,
            errors.BurnInFailedError.code,
        }
    )
)
OUR_FAILURES_THRESHOLD = 5
ASR_TIMEOUTS_THRESHOLD = 3
ALARM_WINDOW = Duration.minutes(15)
SERVER_ERROR_RATE_THRESHOLD = 0.01
SERVER_ERROR_WINDOW = Duration.minutes(10)
# The transcription stage counts each ending under its error code in lower case.
ASR_TIMEOUT_STATUS = errors.TranscriptionTimeoutError.code.lower()


def asr_queue_wait_threshold_seconds(config: StageConfig) -> float:
    """How long the oldest ASR request may wait before the AsrQueueWait alarm fires: half the heartbeat."""
    return config.asr_heartbeat_seconds / 2


def catalog_metric(
    name: str, dimensions: dict[str, str] | None = None, *, statistic: str = "Sum", period: Duration = SUM_PERIOD
) -> cloudwatch.Metric:
    """One time series of a catalog metric, with exactly its catalog dimensions.

    Raises:
        KeyError: ``name`` is not in the catalog.
        ValueError: ``dimensions`` are not the metric's own.
    """
    definition = METRICS[name]
    dimensions = dimensions or {}
    if set(dimensions) != set(definition.dimensions):
        raise ValueError(f"{name} takes dimensions {definition.dimensions}, got {tuple(dimensions)}")
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={SERVICE_DIMENSION: SERVICE, **dimensions},
        statistic=statistic,
        period=period,
    )


def catalog_search(name: str, statistic: str, *, period: Duration = SUM_PERIOD) -> cloudwatch.MathExpression:
    """Every series of a catalog metric, one line per value of its dimensions (dashboards only)."""
    definition = METRICS[name]
    schema = ",".join([NAMESPACE, SERVICE_DIMENSION, *definition.dimensions])
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{{{schema}}} MetricName=\"{name}\"', '{statistic}', {int(period.to_seconds())})",
        using_metrics={},
        period=period,
        label=name,
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        state_machine: sfn.StateMachine,
        asr_queue: sqs.IQueue,
        asr_dead_letter_queue: sqs.IQueue,
        expiry_failures: sqs.IQueue,
        execution_end_dead_letters: sqs.IQueue,
        webhook_dead_letters: sqs.IQueue,
        rest_api: apigateway.RestApi,
        job_creations_blocked: cloudwatch.IMetric,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarm_topic = sns.Topic(self, "Alarms", display_name=f"{config.name_prefix} alarms", enforce_ssl=True)
        # CloudWatch cannot publish to a topic under the AWS-managed SNS key, and alarms carry no data.
        acknowledge(
            self.alarm_topic,
            "AwsSolutions-SNS2",
            "Alarm notifications hold only alarm names and states; a customer-managed KMS key "
            "would add cost for no protected data.",
        )
        if config.alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))

        self.alarms = self._alarms(state_machine, asr_dead_letter_queue, expiry_failures, rest_api)
        self.alarms.append(
            self._dead_letters_alarm(
                "ExecutionEndDeadLetters", execution_end_dead_letters,
                "Ended executions whose job could not be recorded as failed; they stay 'running'.",
            )
        )
        self.alarms.append(
            self._dead_letters_alarm(
                "WebhookDeadLetters", webhook_dead_letters,
                "Webhooks given up on after the whole retry schedule: their receivers never took them.",
            )
        )
        self.alarms.append(self._asr_queue_wait_alarm(asr_queue, config))
        alarm_action = actions.SnsAction(self.alarm_topic)
        for alarm in self.alarms:
            alarm.add_alarm_action(alarm_action)

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=config.name_prefix)
        self.dashboard.add_widgets(
            *self._job_widgets(), *self._duration_widgets(), *self._queue_widgets(asr_queue, asr_dead_letter_queue),
        )
        self.dashboard.add_widgets(*self._media_widgets(), *self._api_widgets(rest_api, job_creations_blocked))
        self.dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24))

    def _alarms(
        self,
        state_machine: sfn.StateMachine,
        asr_dead_letter_queue: sqs.IQueue,
        expiry_failures: sqs.IQueue,
        rest_api: apigateway.RestApi,
    ) -> list[cloudwatch.Alarm]:
        # Every failed job ends in the JobFailed state, the callers' bad sources included, so the
        # failed-executions alarm counts the failures that are ours by code rather than ExecutionsFailed.
        our_failures = cloudwatch.MathExpression(
            expression="+".join(f"m{index}" for index in range(len(OUR_FAILURE_CODES))),
            using_metrics={
                f"m{index}": catalog_metric("JobsFailed", {"errorCode": code}, period=ALARM_WINDOW)
                for index, code in enumerate(OUR_FAILURE_CODES)
            },
            period=ALARM_WINDOW,
            label="jobs failed on our side",
        )
        ended_early = cloudwatch.MathExpression(
            expression="timedOut + aborted",
            using_metrics={
                "timedOut": state_machine.metric_timed_out(period=SUM_PERIOD, statistic="Sum"),
                "aborted": state_machine.metric_aborted(period=SUM_PERIOD, statistic="Sum"),
            },
            period=SUM_PERIOD,
            label="executions timed out or aborted",
        )
        quiet = cloudwatch.TreatMissingData.NOT_BREACHING
        at_least = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        above = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        return [
            our_failures.create_alarm(
                self, "FailedExecutions", alarm_description=f"Jobs failed with {', '.join(OUR_FAILURE_CODES)}.",
                threshold=OUR_FAILURES_THRESHOLD, evaluation_periods=1, comparison_operator=at_least,
                treat_missing_data=quiet,
            ),
            ended_early.create_alarm(
                self, "ExecutionsEndedEarly", alarm_description="Executions hit the global timeout or were aborted.",
                threshold=0, evaluation_periods=1, comparison_operator=above, treat_missing_data=quiet,
            ),
            asr_dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ).create_alarm(
                self, "AsrDeadLetters", alarm_description="ASR requests the worker could not handle at all.",
                threshold=0, evaluation_periods=1, comparison_operator=above, treat_missing_data=quiet,
            ),
            expiry_failures.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ).create_alarm(
                self, "ExpiryFailures", alarm_description="Expired jobs whose files could not be deleted.",
                threshold=0, evaluation_periods=1, comparison_operator=above, treat_missing_data=quiet,
            ),
            # The Average of 5XXError is the share of requests that failed.
            rest_api.metric_server_error(period=SERVER_ERROR_WINDOW, statistic="Average").create_alarm(
                self, "ServerErrorRate", alarm_description="More than 1 % of API requests answered 5xx.",
                threshold=SERVER_ERROR_RATE_THRESHOLD, evaluation_periods=1, comparison_operator=above,
                treat_missing_data=quiet,
            ),
            catalog_metric("AsrTranscriptions", {"status": ASR_TIMEOUT_STATUS}, period=ALARM_WINDOW).create_alarm(
                self, "AsrTimeouts", alarm_description="Transcriptions timing out: the provider is slow or down.",
                threshold=ASR_TIMEOUTS_THRESHOLD, evaluation_periods=1, comparison_operator=at_least,
                treat_missing_data=quiet,
            ),
        ]  # fmt: skip

    def _dead_letters_alarm(self, construct_id: str, dead_letters: sqs.IQueue, description: str) -> cloudwatch.Alarm:
        return dead_letters.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(5), statistic="Maximum"
        ).create_alarm(
            self, construct_id, alarm_description=description, threshold=0, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip

    def _asr_queue_wait_alarm(self, asr_queue: sqs.IQueue, config: StageConfig) -> cloudwatch.Alarm:
        # The Transcribe state's heartbeat clock starts when the request is queued, but the worker's first
        # beat comes only when it takes the message: a request that waits HeartbeatSeconds times out
        # (States.HeartbeatTimeout). Half of it leaves time to raise asr_max_concurrency before jobs fail.
        return asr_queue.metric_approximate_age_of_oldest_message(
            period=Duration.minutes(1), statistic="Maximum"
        ).create_alarm(
            self, "AsrQueueWait",
            alarm_description=(
                f"ASR requests wait in the queue for more than half of the {config.asr_heartbeat_seconds} s "
                "heartbeat: raise asr_max_concurrency before they time out."
            ),
            threshold=asr_queue_wait_threshold_seconds(config), evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip

    def _job_widgets(self) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title="Jobs by status",
                left=[catalog_metric("JobsCreated"), catalog_metric("JobsSucceeded")],
                right=[catalog_search("JobsFailed", "Sum")],
                right_y_axis=cloudwatch.YAxisProps(label="failed, by errorCode"),
                stacked=False,
                width=8,
            )
        ]

    def _duration_widgets(self) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title="Job duration p50 / p95 (s)",
                left=[catalog_search("JobDuration", "p50"), catalog_search("JobDuration", "p95")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="ASR latency p50 / p95 (s)",
                left=[catalog_search("AsrLatency", "p50"), catalog_search("AsrLatency", "p95")],
                right=[catalog_search("AsrTranscriptions", "Sum")],
                width=8,
            ),
        ]

    def _queue_widgets(self, asr_queue: sqs.IQueue, dead_letters: sqs.IQueue) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title="ASR queue depth",
                left=[
                    asr_queue.metric_approximate_number_of_messages_visible(label="waiting", statistic="Maximum"),
                    dead_letters.metric_approximate_number_of_messages_visible(
                        label="dead letters", statistic="Maximum"
                    ),
                ],
                right=[
                    asr_queue.metric_approximate_age_of_oldest_message(
                        label="oldest waiting (s)", statistic="Maximum", period=Duration.minutes(1)
                    )
                ],
                width=8,
            )
        ]

    def _media_widgets(self) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title="ffmpeg fallbacks by reason, and seconds of media clipped",
                left=[catalog_search("FfmpegFallback", "Sum")],
                right=[catalog_metric("ProcessedClipSeconds")],
                width=8,
            )
        ]

    def _api_widgets(
        self, rest_api: apigateway.RestApi, job_creations_blocked: cloudwatch.IMetric
    ) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title="API 4xx / 5xx",
                left=[
                    rest_api.metric_client_error(period=SUM_PERIOD, statistic="Sum"),
                    rest_api.metric_server_error(period=SUM_PERIOD, statistic="Sum"),
                ],
                right=[catalog_search("ApiRequests", "Sum")],
                width=8,
            ),
            # API Gateway publishes no count of its throttle and quota refusals (they are among the 4xx);
            # what it cannot see are the requests WAF blocked before them.
            cloudwatch.GraphWidget(
                title="Job creations blocked by the per-IP rate rule",
                left=[job_creations_blocked],
                width=8,
            ),
        ]
