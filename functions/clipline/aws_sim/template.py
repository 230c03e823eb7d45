"""The one place the simulated stack's template differs from the one ``cdk deploy`` sends.

moto's CloudFormation models many resource types, not all. It fails a stack that
refers (``Ref``, ``Fn::GetAtt``) to a type it lacks, so those resources are left
out, and so are the properties, dependencies and outputs that name them. Each is
listed, with the reason, in what ``simulated_template`` returns. Nothing else of
the template changes: names, environments, handlers, the definition's location
and substitutions all go to moto as synthesized.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

from .deployed_values import NOT_SIMULATED

# Properties that only point at a left-out resource: without it they mean nothing.
_POINTERS = {
    "AWS::ApiGateway::Method": ("RequestValidatorId", "RequestModels"),
}


@dataclass(frozen=True)
class NotSimulated:
    logical_id: str
    resource_type: str
    what: str


@dataclass
class SimulatedTemplate:
    template: dict[str, Any]
    not_simulated: list[NotSimulated] = field(default_factory=list)

    def report(self) -> list[str]:
        return [f"{item.logical_id} ({item.resource_type}): {item.what}" for item in self.not_simulated]


def simulated_template(template: dict[str, Any], is_modelled: Callable[[str], bool]) -> SimulatedTemplate:
    """``template`` without the resources whose type ``is_modelled`` refuses, and what pointed at them."""
    result = copy.deepcopy(template)
    resources: dict[str, Any] = result["Resources"]
    left_out = {logical_id: item["Type"] for logical_id, item in resources.items() if not is_modelled(item["Type"])}
    report = SimulatedTemplate(result)
    for logical_id, resource_type in sorted(left_out.items()):
        del resources[logical_id]
        report.not_simulated.append(NotSimulated(logical_id, resource_type, "resource type not modelled by moto"))
    # moto's Method requires an integration URI, which a MOCK integration (a CORS preflight) has not;
    # the simulated gateway answers preflights from the template's own mock methods.
    for logical_id in sorted(name for name, item in resources.items() if is_mock_method(item)):
        left_out[logical_id] = resources.pop(logical_id)["Type"]
        report.not_simulated.append(NotSimulated(logical_id, left_out[logical_id], "MOCK integration"))

    for logical_id, item in resources.items():
        for name in _POINTERS.get(item["Type"], ()):
            if _names_any(item.get("Properties", {}).get(name), left_out):
                del item["Properties"][name]
                report.not_simulated.append(NotSimulated(logical_id, item["Type"], f"property {name}"))
        depends_on = item.get("DependsOn")
        if depends_on is not None:
            kept = [name for name in ([depends_on] if isinstance(depends_on, str) else depends_on) if name not in left_out]
            if kept:
                item["DependsOn"] = kept
            else:
                del item["DependsOn"]
        # Any other mention (an ARN joined from a stage's name, a dashboard naming an alarm) becomes a marker.
        if "Properties" in item:
            item["Properties"] = _without_references(item["Properties"], left_out, logical_id, report)

    outputs = result.get("Outputs", {})
    for name in [name for name, output in outputs.items() if _names_any(output, left_out)]:
        del outputs[name]
        report.not_simulated.append(NotSimulated(name, "Output", "names a resource left out"))
    return report


def is_mock_method(resource: dict[str, Any]) -> bool:
    """Whether ``resource`` is an API Gateway method answered by a MOCK integration."""
    properties = resource.get("Properties", {})
    return resource.get("Type") == "AWS::ApiGateway::Method" and properties.get("Integration", {}).get("Type") == "MOCK"


def _references(node: Any) -> str | None:
    if isinstance(node, dict) and len(node) == 1:
        if "Ref" in node and isinstance(node["Ref"], str):
            return node["Ref"]
        if "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"]
            return target[0] if isinstance(target, list) else str(target).split(".")[0]
    return None


def _names_any(node: Any, logical_ids: dict[str, str]) -> bool:
    if _references(node) in logical_ids:
        return True
    if isinstance(node, dict):
        return any(_names_any(value, logical_ids) for value in node.values())
    if isinstance(node, list):
        return any(_names_any(value, logical_ids) for value in node)
    return False


def _without_references(node: Any, left_out: dict[str, str], owner: str, report: SimulatedTemplate) -> Any:
    target = _references(node)
    if target in left_out:
        report.not_simulated.append(NotSimulated(owner, "reference", f"to {target}, given as a marker"))
        return NOT_SIMULATED.format(target)
    if isinstance(node, dict):
        return {key: _without_references(value, left_out, owner, report) for key, value in node.items()}
    if isinstance(node, list):
        return [_without_references(value, left_out, owner, report) for value in node]
    return node
