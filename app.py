#!/usr/bin/env python3
"""CDK entry point: ``npx aws-cdk@2 synth`` / ``deploy -c stage=prod``. See docs/deploy.md."""

from infra.app import build_app

build_app().synth()
