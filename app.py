#!/usr/bin/env python3
"""CDK entry point: ``npx aws-cdk@2 synth`` / ``deploy -c stage=prod``. See docs/deploy.md."""

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import StageConfig
from infra.stack import ClipStack

app = cdk.App()
config = StageConfig.from_context(app.node)
# No env: the stack is environment-agnostic, so synth needs no credentials and no lookups.
ClipStack(app, f"Clipline-{config.stage}", config=config, description=f"clipline ({config.stage})")
# A rule broken without an acknowledgement stops the synth, and with it any deploy.
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
