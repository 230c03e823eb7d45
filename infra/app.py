"""The CDK app: the stage the context names, as one stack, checked by cdk-nag.

``app.py`` (what ``cdk synth`` runs) and the infrastructure tests both build it here,
so what the tests synthesize is what gets deployed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from .config import StageConfig
from .stack import ClipStack


def stack_name(stage: str) -> str:
    return f"Clipline-{stage}"


def build_app(
    context: dict[str, Any] | None = None,
    outdir: str | None = None,
    *,
    stages: Sequence[str] | None = None,
    verbose_nag: bool = False,
) -> cdk.App:
    """A CDK app with one ``Clipline-<stage>`` stack for the context's ``stage`` (or for each of ``stages``).

    ``context`` and ``outdir`` default to what the CDK CLI passes in the environment.

    Raises:
        ValueError: a stage is not in the context's ``stages``, or its settings are invalid.
    """
    app = cdk.App(context=context, outdir=outdir)
    for stage in stages or [None]:
        config = StageConfig.from_context(app.node, stage)
        # No env: the stack is environment-agnostic, so synth needs no credentials and no lookups.
        ClipStack(app, stack_name(config.stage), config=config, description=f"clipline ({config.stage})")
    # A rule broken without an acknowledgement stops the synth, and with it any deploy.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=verbose_nag))
    return app
