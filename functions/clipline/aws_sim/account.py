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

from .api_gateway import SimulatedApiGateway, deployed_routes, gateway_responses, preflights
from .assembly import StackArtifact
from .bucket_deployment import apply_bucket_cors, deploy_bucket_contents
from .deployed_values import NOT_SIMULATED, DeployedValues
from .event_sources import ExecutionStatusEvents, SqsEventSource, StreamEventSource, TimeToLive
from .faults import FaultInjector
from .lambda_host import FunctionCode, InvocationResult, LambdaHost
from .moto_gaps import close_gaps, detach_moto_pollers
from .static_site import SimulatedDistribution, deployed_distribution
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
    console_url: str | None = None
    functions: dict[str, str] = field(default_factory=dict)  # logical id -> function name
    # The AWS endpoints deployed values name, and the simulated ones standing in for them.
    stand_ins: list[str] = field(default_factory=list)
    # Seconds each deploy step took: publishing the assets, creating the stack.
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "stack": self.stack_name,
            "apiUrl": self.api_url,
            "apiKey": self.api_key,
            "endpointUrl": self.endpoint_url,
            "consoleUrl": self.console_url,
            "region": REGION,
            "outputs": self.outputs,
            "functions": sorted(self.functions.values()),
            "notSimulated": self.not_simulated,
            "standIns": self.stand_ins,
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
        console_port: int = 0,
        ttl_interval_seconds: float = 5.0,
        ttl_delay_seconds: float = 0.0,
        transcribe_model: str | None = None,
    ) -> None:
        self._stack = stack
        self._work_dir = work_dir
        self._host = host
        self._api_port = api_port
        self._endpoint_port = endpoint_port
        self._console_port = console_port
        self._ttl_interval = ttl_interval_seconds
        self._ttl_delay = ttl_delay_seconds
        self._transcribe_model = transcribe_model
        self._stop = threading.Event()
        self._ttl: dict[str, TimeToLive] = {}
        self.lambdas = LambdaHost(work_dir / "lambda", self._function_code)
        self.deployment: Deployment | None = None
        self._values: DeployedValues | None = None
        # The servers whose loops run: only those can be shut down (shutdown waits for the loop).
        self._serving: list[Any] = []

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
        self._serving.append(self._endpoint)
        host, port = self._endpoint.server_address[:2]
        # moto's Step Functions engine calls Lambda and SQS through its own server, on this port.
        os.environ["MOTO_PORT"] = str(port)
        self.endpoint_url = f"http://{host}:{port}"

    def _deployed(self, value: str) -> str:
        """A deployed value as the account runs it: the AWS endpoints it names replaced by their stand-ins."""
        return self._values.stand_ins.apply(value) if self._values else value

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
            environment={name: self._deployed(value) for name, value in (function.environment_vars or {}).items()},
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
        physical_ids = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
        self._values = DeployedValues(self._stack.template, physical_ids, account_id=ACCOUNT_ID, region=REGION)
        self._site = SimulatedDistribution(self._host, self._console_port, self.client("s3"))
        gateway = self._bind_api(resources)
        self._stand_in_for_aws(gateway.base_url, self._site.base_url)
        # moto keeps none of them; the deployed template's own definitions shape the gateway's answers.
        gateway.responses = gateway_responses(self._stack.template, self._values.resolve)
        gateway.preflights = preflights(self._stack.template, self._values.resolve)
        console_url = self._deploy_console()
        self._start_event_sources()
        api_key = self._create_api_key()
        gateway.serve_in_background()
        self._serving.append(gateway)
        self.deployment = Deployment(
            stack_name=self._stack.name,
            outputs={item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])},
            not_simulated=simulated.report(),
            api_url=gateway.base_url,
            api_key=api_key,
            endpoint_url=self.endpoint_url,
            console_url=console_url,
            stand_ins=self._values.stand_ins.report(),
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

    def _bind_api(self, resources: list[dict]) -> SimulatedApiGateway:
        """The REST API's gateway, listening (so its URL is known) but not yet serving."""
        rest_api_id = next(r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::ApiGateway::RestApi")
        self._gateway = SimulatedApiGateway(
            self._host,
            self._api_port,
            routes=deployed_routes(self.client("apigateway"), rest_api_id),
            api_keys=self.api_keys,
            invoke=self.invoke,
            account_id=ACCOUNT_ID,
            rest_api_id=rest_api_id,
            stage=STAGE_NAME,
        )
        return self._gateway

    def _stand_in_for_aws(self, gateway_url: str, site_url: str) -> None:
        """Each AWS endpoint deployed values name, and the simulated one that plays its part.

        The gateway for the API (its URL with the stage, and its origin), the endpoint for
        every bucket (presigned links are path-style), the site for the distribution.
        """
        assert self._values is not None
        template = self._stack.template
        api_url = self._values.evaluate(template["Outputs"]["ApiUrl"]["Value"])
        self._values.stand_ins.add(api_url, gateway_url + "/")
        self._values.stand_ins.add("/".join(api_url.split("/")[:3]), gateway_url)
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::S3::Bucket":
                for attribute in ("DomainName", "RegionalDomainName"):
                    domain = self._values.evaluate({"Fn::GetAtt": [logical_id, attribute]})
                    self._values.stand_ins.add(f"https://{domain}", self.endpoint_url)
            elif resource["Type"] == "AWS::CloudFront::Distribution":
                self._values.stand_ins.add("https://" + NOT_SIMULATED.format(logical_id), site_url)

    def _deploy_console(self) -> str | None:
        """The bucket deployments and bucket CORS moto leaves undone, then the distribution served: its URL, if any."""
        assert self._values is not None and self._site is not None
        template = self._stack.template
        s3 = self.client("s3")
        apply_bucket_cors(template, self._values, s3)
        deploy_bucket_contents(template, self._values, s3, self._resolve)
        distribution = deployed_distribution(template, self._values)
        if distribution is None:
            return None
        self._site.serve(distribution)
        self._serving.append(self._site)
        return self._site.base_url + "/"

    def stop(self) -> None:
        """Stop what started; safe after a start that failed half-way."""
        self._stop.set()
        for server in reversed(self._serving):
            server.shutdown()
        for server in (getattr(self, "_gateway", None), getattr(self, "_site", None)):
            if server is not None:
                server.server_close()
        self.lambdas.stop()
