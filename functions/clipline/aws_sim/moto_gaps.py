"""Where moto 5.2 does less than AWS for our stack, and what the simulated account does about it.

Each gap is closed here, in one place, by teaching moto what the service does,
never by changing what the stack asks for:

- **State machines from CloudFormation** are created in moto's plain Step Functions
  backend, which the executing engine never sees, and only from an inline
  ``DefinitionString``. CDK writes the definition as ``DefinitionS3Location`` with
  ``DefinitionSubstitutions``; as CloudFormation does, the definition is read
  from the asset bucket and each ``${name}`` is replaced by its resolved value.
- **Functions from CloudFormation** lose ``Layers``, ``EphemeralStorage`` and
  ``Architectures``, and layer versions have no physical id for ``Ref``; the
  function keeps what the template gave it, and a layer's ``Ref`` is its version ARN.
- **Tables from CloudFormation** lose ``TimeToLiveSpecification``; it is applied.
- **Lambda invocations** go to the simulated execution environments.
- **Event source mappings** were served by moto itself, synchronously on each
  ``SendMessage`` and stream write, in a container. The simulated account's own
  pollers serve them (``event_sources.py``), so moto's are switched off.
- **SendTaskFailure** drops ``cause``, which carries our error's message.
- **StopExecution** while a task runs: the task's late failure ended the execution
  FAILED, a task waiting for its token waited on until its heartbeat timed out, and
  the execution read RUNNING until the task in flight returned;
  the execution ends ABORTED at once, as in AWS.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from moto.awslambda.models import LambdaFunction, LayerVersion
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.s3.models import s3_backends
from moto.sqs.models import sqs_backends
from moto.stepfunctions import models as stepfunctions_models
from moto.stepfunctions.responses import get_backend as executing_stepfunctions_backend

from ..local.engine import close_engine_gaps

Invoker = Callable[[str, bytes], tuple[bytes, str | None]]

# CloudFormation's DefinitionSubstitutions placeholders: ${Name}, not the $$ and $. of JSONPath.
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def substitute_definition(definition: str, substitutions: dict[str, Any]) -> str:
    """``${name}`` replaced as CloudFormation's DefinitionSubstitutions do; unknown names stay as they are."""
    return _PLACEHOLDER.sub(lambda match: str(substitutions.get(match.group(1), match.group(0))), definition)


def _state_machine_from_cloudformation(
    cls: type, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
) -> Any:
    properties = cloudformation_json["Properties"]
    definition = properties.get("DefinitionString")
    if definition is None and "DefinitionS3Location" in properties:
        location = properties["DefinitionS3Location"]
        stored = s3_backends[account_id]["aws"].get_object(location["Bucket"], location["Key"])
        definition = stored.value.decode("utf-8")  # type: ignore[union-attr]
    if isinstance(definition, dict):
        definition = json.dumps(definition)
    definition = substitute_definition(definition or "", properties.get("DefinitionSubstitutions") or {})
    return executing_stepfunctions_backend(account_id, region_name).create_state_machine(
        properties.get("StateMachineName", resource_name),
        definition,
        properties.get("RoleArn", ""),
        tags=stepfunctions_models.cfn_to_api_tags(properties.get("Tags", [])),
    )


def _keep_lost_function_properties(function: LambdaFunction, properties: dict[str, Any], account_id: str, region: str) -> None:
    function.layers = function._get_layers_data(properties.get("Layers", []))
    if "EphemeralStorage" in properties:
        function.ephemeral_storage = properties["EphemeralStorage"]["Size"]
    function.architectures = properties.get("Architectures", function.architectures)


def _keep_time_to_live(table: Table, properties: dict[str, Any], account_id: str, region: str) -> None:
    specification = properties.get("TimeToLiveSpecification")
    if specification:
        dynamodb_backends[account_id][region].update_time_to_live(table.name, specification)


def _completing(model: type, finish: Callable[[Any, dict[str, Any], str, str], None]) -> None:
    """Make ``model``'s CloudFormation create also apply what moto's leaves out (``finish``)."""
    create = model.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
    if getattr(create, "completed_by_simulation", False):
        return

    def create_completely(
        cls: type, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        resource = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        finish(resource, cloudformation_json.get("Properties", {}), account_id, region_name)
        return resource

    create_completely.completed_by_simulation = True  # type: ignore[attr-defined]
    model.create_from_cloudformation_json = classmethod(create_completely)  # type: ignore[attr-defined]


def close_gaps(invoke: Invoker) -> None:
    """Patch moto, in this process, so that the stack's resources work as they do in AWS."""
    stepfunctions_models.StateMachine.create_from_cloudformation_json = classmethod(  # type: ignore[method-assign]
        _state_machine_from_cloudformation
    )
    LayerVersion.physical_resource_id = property(lambda self: self.arn)  # type: ignore[attr-defined]
    _completing(LambdaFunction, _keep_lost_function_properties)
    _completing(Table, _keep_time_to_live)
    close_engine_gaps()

    def invoke_in_environment(
        backend: LambdaSimpleBackend, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: dict
    ) -> bytes:
        payload, error_type = invoke(function_name, body if isinstance(body, bytes) else (body or "{}").encode())
        if error_type is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
        return payload

    LambdaSimpleBackend.invoke = invoke_in_environment  # type: ignore[method-assign]


def detach_moto_pollers(account_id: str, region: str) -> int:
    """Stop moto delivering to event source mappings itself; how many it had attached.

    moto hands a queue's messages or a table's stream records to the mapped function
    the moment they are written, receiving them first (so a failed delivery counts a
    receive). The mappings stay in the Lambda service, where the simulated pollers
    read them.
    """
    detached = 0
    for queue in sqs_backends[account_id][region].queues.values():
        detached += len(queue.lambda_event_source_mappings)
        queue.lambda_event_source_mappings.clear()
    for table in dynamodb_backends[account_id][region].tables.values():
        detached += len(table.lambda_event_source_mappings)
        table.lambda_event_source_mappings.clear()
    return detached
