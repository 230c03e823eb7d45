"""The whole service as one stack: it composes the constructs and grants each function what it uses."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from clipline.api.routes import API_ROUTES
from clipline.workflow import ASR_WORKER_HANDLER, TASK_HANDLERS, WEBHOOK_DELIVERY_HANDLER

from . import acknowledge
from .api import Api
from .config import StageConfig
from .console import Console
from .ffmpeg_layer import FfmpegLayer
from .functions import Functions, env_name
from .monitoring import Monitoring
from .pipeline import Pipeline
from .queue import AsrQueue, grant_asr_provider
from .storage import Storage
from .webhooks import WebhookDelivery

# API functions granted reads only, below; every other function may also write and delete.
READ_ONLY_API_FUNCTIONS = frozenset({"GetJob", "ListJobs", "GetJobResult"})
JOBS_ONLY_FUNCTIONS = frozenset({"RedeliverWebhook", "DeliverWebhook"})
# The functions that end a job, or announce its message again, and so queue its webhook.
WEBHOOK_ANNOUNCERS = ("FinalizeJob", "FailJob", "RecordExecutionEnd", "RedeliverWebhook")


class ClipStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        storage = Storage(self, "Storage", config=config)
        ffmpeg = FfmpegLayer(self, "FfmpegLayer")
        functions = Functions(
            self,
            "Functions",
            config=config,
            jobs_table_name=storage.jobs_table.table_name,
            artifacts_bucket_name=storage.artifacts_bucket.bucket_name,
            ffmpeg_layer=ffmpeg,
        )
        worker = functions.by_handler(ASR_WORKER_HANDLER)
        asr = AsrQueue(self, "AsrQueue", config=config, worker=worker)
        task_functions = {placeholder: functions.by_handler(handler) for placeholder, handler in TASK_HANDLERS.items()}
        pipeline = Pipeline(
            self,
            "Pipeline",
            config=config,
            task_functions=task_functions,
            asr_queue=asr.queue,
            execution_end_handler=functions["RecordExecutionEnd"],
        )
        state_machine = pipeline.state_machine
        api = Api(self, "Api", config=config, function_for_handler=functions.by_handler)
        storage.remove_expired_artifacts_with(functions["RemoveExpiredArtifacts"])
        console = Console(
            self,
            "Console",
            rest_api=api.rest_api,
            artifacts_bucket=storage.artifacts_bucket,
            access_logs_bucket=storage.access_logs_bucket,
            removal_policy=storage.removal_policy,
        )
        self._let_console_call(console, api, storage, functions)

        # The status and result routes only read: a record of an older schema is upgraded in memory, never
        # rewritten on read. The result route presigns GetObject links, which work only if its role may get them.
        storage.jobs_table.grant_read_data(functions["GetJob"])
        storage.jobs_table.grant_read_data(functions["ListJobs"])
        storage.jobs_table.grant_read_data(functions["GetJobResult"])
        storage.artifacts_bucket.grant_read(functions["GetJobResult"])
        # The webhook functions record attempts on jobs and never touch a file.
        for name in JOBS_ONLY_FUNCTIONS:
            storage.jobs_table.grant_read_write_data(functions[name])
        # The others read and write jobs and artifacts: steps store results, FailJob and retention delete files.
        for name, function in functions.functions.items():
            if name in READ_ONLY_API_FUNCTIONS | JOBS_ONLY_FUNCTIONS:
                continue
            storage.jobs_table.grant_read_write_data(function)
            storage.artifacts_bucket.grant_read_write(function)
            storage.artifacts_bucket.grant_delete(function)
        for function in task_functions.values():
            function.grant_invoke(state_machine)
        asr.queue.grant_send_messages(state_machine)
        state_machine.grant_task_response(worker)
        grant_asr_provider(worker, config)

        webhooks = WebhookDelivery(
            self, "Webhooks", config=config, deliverer=functions.by_handler(WEBHOOK_DELIVERY_HANDLER)
        )
        for name in WEBHOOK_ANNOUNCERS:
            webhooks.announce_from(functions[name])

        create_job = functions["CreateJob"]
        state_machine.grant_start_execution(create_job)
        # Only CreateJob starts executions and DeleteJob stops them; giving the tasks the ARN too would
        # make the definition depend on itself.
        create_job.add_environment(env_name("state_machine_arn"), state_machine.state_machine_arn)
        delete_job = functions["DeleteJob"]
        state_machine.grant_execution(delete_job, "states:StopExecution")
        delete_job.add_environment(env_name("state_machine_arn"), state_machine.state_machine_arn)
        # grant_execution names the state machine's executions as '<execution ARN prefix>:<name>:*', the
        # name cut from its ARN; cdk-nag reports that finding with the intrinsic functions spelt out.
        state_machine_name = json.dumps(
            {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": self._logical_id(state_machine)}]}]}, separators=(",", ":")
        )
        # Execution names are job ids, made at run time: no narrower ARN exists in advance.
        acknowledge(
            delete_job,
            "AwsSolutions-IAM5",
            "DeleteJob stops executions of the one pipeline state machine, whose names (job ids) are made at run time.",
            f"Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:{state_machine_name}:*",
        )

        monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            state_machine=state_machine,
            asr_queue=asr.queue,
            asr_dead_letter_queue=asr.dead_letter_queue,
            expiry_failures=storage.expiry_failures,
            execution_end_dead_letters=pipeline.execution_end_dead_letters,
            webhook_dead_letters=webhooks.dead_letter_queue,
            rest_api=api.rest_api,
            job_creations_blocked=api.metric_job_creations_blocked(),
        )
        self._acknowledge_grant_wildcards(storage, task_functions, worker)

        CfnOutput(self, "ApiUrl", value=api.rest_api.url)
        CfnOutput(self, "ConsoleUrl", value=console.origin + "/")
        CfnOutput(self, "StateMachineArn", value=state_machine.state_machine_arn)
        CfnOutput(self, "StateMachineName", value=state_machine.state_machine_name)
        CfnOutput(self, "JobsTableName", value=storage.jobs_table.table_name)
        CfnOutput(self, "ArtifactsBucketName", value=storage.artifacts_bucket.bucket_name)
        CfnOutput(self, "WebhookSecretsPrefix", value=webhooks.secrets_prefix)
        CfnOutput(self, "DashboardName", value=monitoring.dashboard.dashboard_name)
        CfnOutput(self, "AlarmTopicArn", value=monitoring.alarm_topic.topic_arn)
        for plan_name, plan in api.usage_plans.items():
            CfnOutput(self, f"{plan_name.title()}UsagePlanId", value=plan.usage_plan_id)

    @staticmethod
    def _let_console_call(console: Console, api: Api, storage: Storage, functions: Functions) -> None:
        """CORS for the console's origin: on the API, in its functions' answers, and on the artifact links."""
        api.allow_browser_origin(console.origin)
        for route in API_ROUTES:
            functions.by_handler(route.handler).add_environment(env_name("console_origins"), console.origin)
        # The page PUTs uploads and fetches subtitles (for the player's track) straight from S3. Any origin
        # may: a presigned link is its own authorization (anyone holding it can already use it), no
        # credentials are allowed, and naming the console here would make the bucket depend on the
        # distribution whose CSP names the bucket.
        storage.artifacts_bucket.add_cors_rule(
            allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD, s3.HttpMethods.PUT],
            allowed_origins=["*"],
            allowed_headers=["content-type"],
            exposed_headers=["ETag"],
            max_age=3600,
        )

    def _acknowledge_grant_wildcards(
        self, storage: Storage, task_functions: dict[str, lambda_.Function], worker: lambda_.Function
    ) -> None:
        """cdk-nag findings for the wildcards CDK's grants write, each scoped to one known resource."""
        artifacts_bucket = storage.artifacts_bucket
        # A table grant covers its indexes by '<table>/index/*'; the jobs table has one, ByOwner.
        acknowledge(
            self,
            "AwsSolutions-IAM5",
            "Grants on the jobs table cover its indexes ('<table>/index/*'): the one index it has lists an "
            "owner's jobs.",
            f"Resource::<{self._logical_id(storage.jobs_table)}.Arn>/index/*",
        )
        # Object keys are made per job at run time; the grants cover this one bucket's objects and nothing else.
        acknowledge(
            self,
            "AwsSolutions-IAM5",
            "grant_read_write/grant_delete on the artifacts bucket: action families and object ARNs of "
            "this one bucket, whose keys (jobs/<id>/..., transcripts/...) are made at run time.",
            *(f"Action::s3:{action}" for action in ("Abort*", "DeleteObject*", "GetBucket*", "GetObject*", "List*")),
            f"Resource::<{self._logical_id(artifacts_bucket)}.Arn>/*",
        )
        # lambda:InvokeFunction on '<arn>:*' lets the state machine call a task's versions and aliases.
        acknowledge(
            self,
            "AwsSolutions-IAM5",
            "grant_invoke on the pipeline's task functions covers their versions and aliases ('<arn>:*').",
            *(f"Resource::<{self._logical_id(function)}.Arn>:*" for function in task_functions.values()),
        )
        if self.config.asr_provider == "transcribe":
            # Transcribe job names are made per transcription, so no narrower ARN exists in advance.
            acknowledge(
                worker,
                "AwsSolutions-IAM5",
                "The worker starts, reads and deletes Transcribe jobs it names at run time, in this account "
                "and region only.",
                "Resource::arn:<AWS::Partition>:transcribe:<AWS::Region>:<AWS::AccountId>:transcription-job/*",
            )

    def _logical_id(self, construct: Construct) -> str:
        return self.resolve(self.get_logical_id(construct.node.default_child))
