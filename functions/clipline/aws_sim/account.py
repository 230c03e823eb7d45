"""A simulated AWS account on loopback with one stack of the cloud assembly deployed into it.

``SimulatedAccount.start`` does what ``cdk bootstrap`` and ``cdk deploy`` do
against moto's services (the bootstrap version parameter and asset bucket, every
file asset published, the stack created by moto's CloudFormation) and then runs
the deployed resources: Lambda (``lambda_host``), the event source mappings, TTL
and the execution-status rule (``event_sources``) and the REST API
(``api_gateway``). Everything it runs is read back from the account.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from moto.awslambda.utils import get_backend as lambda_backend
from moto.cloudformation.parsing import get_model_map
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from .api_gateway import SimulatedApiGateway, deployed_routes, gateway_responses
from .assembly import StackArtifact
from .event_sources import ExecutionStatusEvents, SqsEventSource, StreamEventSource, TimeToLive
from .faults import FaultInjector
from .lambda_host import FunctionCode, InvocationResult, LambdaHost
from .moto_gaps import close_gaps, detach_moto_pollers
from .template import simulated_template
from .transcribe_service import SimulatedTranscribe

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# Any bootstrap stack version the synthesizer accepts; CDK's current one.
BOOTSTRAP_VERSION = "30"
STAGE_NAME = "sim"
# Lambda and Step Functions wait on a function for up to 15 minutes.
_LONG_CALLS = Config(read_timeout=960, retries={"mode": "standard", "max_attempts": 3})

log = logging.getLogger("clipline.aws_sim")


@dataclass
class Deployment:
    """What the stack created, as the account reports it."""

    stack_name: str
    outputs: dict[str, str]
    not_simulated: list[str]
    api_url: str
    api_key: str
    endpoint_url: str
    functions: dict[str, str] = field(default_factory=dict)  # logical id -> function name
    # Seconds each deploy step took: publishing the assets, creating the stack.
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "stack": self.stack_name,
            "apiUrl": self.api_url,
            "apiKey": self.api_key,
            "endpointUrl": self.endpoint_url,
            "region": REGION,
            "outputs": self.outputs,
            "functions": sorted(self.functions.values()),
            "notSimulated": self.not_simulated,
            "seconds": self.seconds,
        }


class SimulatedAccount:
    def __init__(
        self,
        stack: StackArtifact,
        work_dir: Path,
        *,
        host: str = "127.0.0.1",
        api_port: int = 0,
        endpoint_port: int = 0,
        ttl_interval_seconds: float = 5.0,
        ttl_delay_seconds: float = 0.0,
        transcribe_model: str | None = None,
    ) -> None:
        self._stack = stack
        self._work_dir = work_dir
        self._host = host
        self._api_port = api_port
        self._endpoint_port = endpoint_port
        self._ttl_interval = ttl_interval_seconds
        self._ttl_delay = ttl_delay_seconds
        self._transcribe_model = transcribe_model
        self._stop = threading.Event()
        self._ttl: dict[str, TimeToLive] = {}
        self.lambdas = LambdaHost(work_dir / "lambda", self._function_code)
        self.deployment: Deployment | None = None

    # -- the endpoint every AWS call goes to

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id="simulated",
            aws_secret_access_key="simulated",
            config=_LONG_CALLS,
        )

    def _start_endpoint(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto_api_backend.reset()
        moto_api_backend.set_config({"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})
        close_gaps(self._invoke_for_moto)
        self.faults = FaultInjector(DomainDispatcherApplication(create_backend_app))
        self._endpoint = make_server(
            self._host, self._endpoint_port, self.faults, threaded=True, request_handler=MotoRequestHandler
        )
        threading.Thread(target=self._endpoint.serve_forever, name="aws-endpoint", daemon=True).start()
        host, port = self._endpoint.server_address[:2]
        # moto's Step Functions engine calls Lambda and SQS through its own server, on this port.
        os.environ["MOTO_PORT"] = str(port)
        self.endpoint_url = f"http://{host}:{port}"

    def _invoke_for_moto(self, function: str, event: bytes) -> tuple[bytes, str | None]:
        result = self.lambdas.invoke(function, event)
        return result.payload, result.error_type

    def invoke(self, function: str, event: bytes) -> InvocationResult:
        return self.lambdas.invoke(function, event)

    def _function_code(self, name_or_arn: str) -> FunctionCode:
        backend = lambda_backend(ACCOUNT_ID, REGION)
        function = backend.get_function(name_or_arn.split(":function:")[-1].split(":")[0])
        layers = tuple(backend.layers_versions_by_arn(layer["Arn"]).code_bytes for layer in function.layers)
        return FunctionCode(
            name=function.function_name,
            arn=function.function_arn,
            revision=f"{function.code_sha_256}:{function.last_modified}",
            handler=function.handler,
            code_zip=function.code_bytes,
            layer_zips=layers,
            environment=dict(function.environment_vars or {}),
            timeout_seconds=int(function.timeout),
            memory_mb=int(function.memory_size),
            region=REGION,
            simulation_environment={"AWS_ENDPOINT_URL": self.endpoint_url},
        )

    # -- bootstrap and deploy

    def start(self) -> Deployment:
        started = time.monotonic()
        self._start_endpoint()
        self._bootstrap()
        self._publish_assets()
        published = time.monotonic()
        simulated = simulated_template(self._stack.template, lambda kind: kind in get_model_map())
        cloudformation = self.client("cloudformation")
        cloudformation.create_stack(
            StackName=self._stack.name,
            TemplateBody=json.dumps(simulated.template),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = cloudformation.describe_stacks(StackName=self._stack.name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RuntimeError(f"the stack ended {stack['StackStatus']}: {stack.get('StackStatusReason')}")
        resources = [
            item
            for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=self._stack.name)
            for item in page["StackResourceSummaries"]
        ]
        detach_moto_pollers(ACCOUNT_ID, REGION)
        self._start_event_sources()
        api_key = self._create_api_key()
        gateway = self._start_api(resources)
        self.deployment = Deployment(
            stack_name=self._stack.name,
            outputs={item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])},
            not_simulated=simulated.report(),
            api_url=gateway.base_url,
            api_key=api_key,
            endpoint_url=self.endpoint_url,
            functions={
                r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in resources
                if r["ResourceType"] == "AWS::Lambda::Function"
            },
            seconds={"publishAssets": round(published - started, 2), "createStack": round(time.monotonic() - published, 2)},
        )
        return self.deployment

    def _bootstrap(self) -> None:
        if self._stack.bootstrap_parameter:
            self.client("ssm").put_parameter(
                Name=self._stack.bootstrap_parameter, Value=BOOTSTRAP_VERSION, Type="String", Overwrite=True
            )
        for bucket in sorted({self._resolve(asset.bucket) for asset in self._stack.assets}):
            self.client("s3").create_bucket(Bucket=bucket)

    def _publish_assets(self) -> None:
        s3 = self.client("s3")
        for asset in self._stack.assets:
            s3.put_object(Bucket=self._resolve(asset.bucket), Key=asset.key, Body=asset.body())

    @staticmethod
    def _resolve(text: str) -> str:
        return text.replace("${AWS::AccountId}", ACCOUNT_ID).replace("${AWS::Region}", REGION).replace(
            "${AWS::Partition}", "aws"
        )

    # -- what runs between the resources

    def _start_event_sources(self) -> None:
        dynamodb = self.client("dynamodb")
        for table in dynamodb.list_tables()["TableNames"]:
            ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
            if ttl.get("TimeToLiveStatus") == "ENABLED":
                self._ttl[table] = TimeToLive(
                    table, ttl["AttributeName"], self.client, self._stop, self._ttl_interval, self._ttl_delay
                )
        pages = self.client("lambda").get_paginator("list_event_source_mappings").paginate()
        for mapping in (item for page in pages for item in page["EventSourceMappings"]):
            if mapping.get("State") != "Enabled":
                continue
            if ":sqs:" in mapping["EventSourceArn"]:
                SqsEventSource(mapping, self.client, self.invoke, REGION, self._stop)
            elif ":dynamodb:" in mapping["EventSourceArn"]:
                StreamEventSource(mapping, self.client, self.invoke, REGION, self._stop, self._ttl.get)
        ExecutionStatusEvents(self.client, self.invoke, ACCOUNT_ID, REGION, self._stop)
        SimulatedTranscribe(self.client, self._transcribe_model, ACCOUNT_ID, REGION, self._stop)

    def _create_api_key(self) -> str:
        answer = self.client("apigateway").create_api_key(name="aws-sim", enabled=True)
        return answer["value"]

    def api_keys(self) -> dict[str, str]:
        keys = self.client("apigateway").get_api_keys(includeValues=True)["items"]
        return {key["value"]: key["id"] for key in keys if key.get("enabled")}

    def _start_api(self, resources: list[dict]) -> SimulatedApiGateway:
        rest_api_id = next(r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::ApiGateway::RestApi")
        gateway = SimulatedApiGateway(
            self._host,
            self._api_port,
            routes=deployed_routes(self.client("apigateway"), rest_api_id),
            api_keys=self.api_keys,
            invoke=self.invoke,
            # moto keeps none of them; the deployed template's own definitions shape the gateway's answers.
            responses=gateway_responses(self._stack.template),
            account_id=ACCOUNT_ID,
            rest_api_id=rest_api_id,
            stage=STAGE_NAME,
        )
        gateway.serve_in_background()
        self._gateway = gateway
        return gateway

    def stop(self) -> None:
        """Stop what started; safe after a start that failed half-way."""
        self._stop.set()
        for server in (getattr(self, "_gateway", None), getattr(self, "_endpoint", None)):
            if server is not None:
                server.shutdown()
        self.lambdas.stop()
