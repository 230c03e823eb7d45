"""The simulated AWS account: the synthesized stack, deployed into moto, running whole jobs.

``clipline serve --aws-sim`` and the ``tests/aws`` tier use it. It takes the cloud
assembly that ``cdk synth`` writes (what ``cdk deploy`` would send), publishes its
assets, creates the stack with moto's CloudFormation and then runs what was
created: each function's deployed code, handler and environment in a process of
its own under the real Lambda runtime interface client, the state machine on
moto's Step Functions engine, the event source mappings as Lambda's pollers do,
and the REST API's methods as API Gateway proxies them. Nothing here knows the
stack's names or wiring; it reads them from what was deployed.

Like ``clipline.local``, it is reached only from the CLI and the tests, so the
Lambda code asset leaves it out.
"""
