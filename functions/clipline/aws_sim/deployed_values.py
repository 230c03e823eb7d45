"""Values of the template that moto never sees, resolved as CloudFormation would, then given their stand-ins.

Some of what the stack deploys is left out of the simulated template (CloudFront,
gateway responses, CORS preflight methods, CDK's bucket deployment) and run by the
account itself, from the template. Their values are CloudFormation expressions:
``DeployedValues.resolve`` evaluates the few intrinsic functions they use, against
the resources the stack created.

What they name are AWS endpoints (``https://<api>.execute-api...``, ``https://<bucket>.s3...``,
the distribution's domain) that do not exist on loopback. ``StandIns`` rewrites each
such endpoint to the simulated one that plays its part, wherever the account reads a
deployed value: these resolved values and the functions' environments alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What a reference to a resource left out of the simulated template resolves to: the same marker
# the template module gives moto, so a value reads alike whether moto or the account resolved it.
NOT_SIMULATED = "not-simulated:{}"


@dataclass
class StandIns:
    """AWS endpoints and their simulated stand-ins; the longest is replaced first, so a URL beats its origin."""

    endpoints: dict[str, str] = field(default_factory=dict)

    def add(self, aws_endpoint: str, simulated_endpoint: str) -> None:
        self.endpoints[aws_endpoint] = simulated_endpoint

    def apply(self, text: str) -> str:
        for aws_endpoint in sorted(self.endpoints, key=len, reverse=True):
            text = text.replace(aws_endpoint, self.endpoints[aws_endpoint])
        return text

    def report(self) -> list[str]:
        return [f"{aws} -> {simulated}" for aws, simulated in sorted(self.endpoints.items())]


class DeployedValues:
    """Resolves expressions of ``template`` against the stack's resources (logical id -> physical id)."""

    def __init__(
        self, template: dict[str, Any], physical_ids: dict[str, str], *, account_id: str, region: str
    ) -> None:
        self._resources: dict[str, Any] = template.get("Resources", {})
        self._physical_ids = physical_ids
        self._pseudo = {
            "AWS::AccountId": account_id,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self._region = region
        self.stand_ins = StandIns()

    def resolve(self, node: Any) -> str:
        """``node`` as CloudFormation would give it, then with its endpoints' stand-ins.

        Raises:
            ValueError: the expression uses a function or attribute the account does not evaluate.
        """
        return self.stand_ins.apply(self.evaluate(node))

    def evaluate(self, node: Any) -> str:
        """``node`` as CloudFormation would give it, with AWS's endpoints."""
        if isinstance(node, str):
            return node
        if isinstance(node, dict) and len(node) == 1:
            function, argument = next(iter(node.items()))
            if function == "Ref":
                return self._ref(argument)
            if function == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self._attribute(logical_id, attribute)
            if function == "Fn::Join":
                separator, parts = argument
                return separator.join(self.evaluate(part) for part in parts)
        raise ValueError(f"the simulated account does not evaluate {node!r}")

    def _ref(self, name: str) -> str:
        if name in self._pseudo:
            return self._pseudo[name]
        resource = self._resources.get(name, {})
        # A stage is left out of the simulated template; its Ref is its name.
        if resource.get("Type") == "AWS::ApiGateway::Stage":
            return resource["Properties"]["StageName"]
        if name in self._physical_ids:
            return self._physical_ids[name]
        if name in self._resources:
            return NOT_SIMULATED.format(name)
        raise ValueError(f"the template has no resource {name}")

    def _attribute(self, logical_id: str, attribute: str) -> str:
        resource_type = self._resources.get(logical_id, {}).get("Type")
        if resource_type == "AWS::S3::Bucket":
            bucket = self._physical_ids[logical_id]
            domains = {
                "Arn": f"arn:aws:s3:::{bucket}",
                "DomainName": f"{bucket}.s3.amazonaws.com",
                "RegionalDomainName": f"{bucket}.s3.{self._region}.amazonaws.com",
            }
            if attribute in domains:
                return domains[attribute]
        if logical_id in self._resources and logical_id not in self._physical_ids:
            return NOT_SIMULATED.format(logical_id)
        raise ValueError(f"the simulated account does not evaluate {logical_id}.{attribute}")
