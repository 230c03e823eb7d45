"""The cloud assembly ``cdk synth`` writes: a stack's template and the file assets ``cdk deploy`` publishes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ASSEMBLY_MANIFEST = "manifest.json"


class AssemblyError(RuntimeError):
    """The folder is not a cloud assembly, lacks the stack, or the app could not be synthesized."""


@dataclass(frozen=True)
class FileAsset:
    """One file asset: where the synthesizer put it, and the bucket and key ``cdk deploy`` uploads it to."""

    source: Path
    packaging: str  # "zip": a folder, zipped on upload; "file": uploaded as it is
    bucket: str  # with ${AWS::AccountId} and ${AWS::Region} still in it
    key: str

    def body(self) -> bytes:
        if self.packaging == "file":
            return self.source.read_bytes()
        return zip_folder(self.source)


@dataclass(frozen=True)
class StackArtifact:
    name: str
    template: dict[str, Any]
    assets: tuple[FileAsset, ...]
    # The SSM parameter the template's bootstrap rule reads, and the least version it accepts.
    bootstrap_parameter: str | None
    bootstrap_version: int | None


def zip_folder(folder: Path) -> bytes:
    """The folder as a deployment zip, as the CDK CLI packs it: relative paths, file modes kept, sorted."""
    buffer = io.BytesIO()
    # Level 1: the ffmpeg layer is most of the bytes and compresses little either way.
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def read_stack(assembly_dir: Path, stack_name: str) -> StackArtifact:
    """The stack ``stack_name`` of the assembly in ``assembly_dir``.

    Raises:
        AssemblyError: there is no assembly there, or it has no such stack.
    """
    manifest_path = assembly_dir / ASSEMBLY_MANIFEST
    if not manifest_path.is_file():
        raise AssemblyError(f"{assembly_dir} holds no cloud assembly ({ASSEMBLY_MANIFEST} is missing)")
    artifacts = json.loads(manifest_path.read_text("utf-8"))["artifacts"]
    stack = artifacts.get(stack_name)
    if stack is None or stack.get("type") != "aws:cloudformation:stack":
        stacks = sorted(name for name, item in artifacts.items() if item.get("type") == "aws:cloudformation:stack")
        raise AssemblyError(f"the assembly has no stack {stack_name!r}; it has {stacks}")
    template = json.loads((assembly_dir / stack["properties"]["templateFile"]).read_text("utf-8"))
    assets: list[FileAsset] = []
    parameter = version = None
    for dependency in stack.get("dependencies", []):
        item = artifacts.get(dependency, {})
        if item.get("type") != "cdk:asset-manifest":
            continue
        properties = item["properties"]
        parameter = properties.get("bootstrapStackVersionSsmParameter")
        version = properties.get("requiresBootstrapStackVersion")
        asset_manifest = json.loads((assembly_dir / properties["file"]).read_text("utf-8"))
        for asset in asset_manifest.get("files", {}).values():
            for destination in asset["destinations"].values():
                assets.append(
                    FileAsset(
                        source=assembly_dir / asset["source"]["path"],
                        packaging=asset["source"].get("packaging", "file"),
                        bucket=destination["bucketName"],
                        key=destination["objectKey"],
                    )
                )
    return StackArtifact(stack_name, template, tuple(assets), parameter, version)


def synthesize(app_dir: Path, outdir: Path, context: dict[str, Any] | None = None) -> Path:
    """Run the CDK app as the CDK CLI does (cdk.json's ``app`` command, with ``CDK_OUTDIR``); the assembly's folder.

    Raises:
        AssemblyError: the app failed.
    """
    cdk_json = json.loads((app_dir / "cdk.json").read_text("utf-8"))
    environment = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
    }
    # The CLI hands the app cdk.json's context, and -c values over it, in this variable.
    environment["CDK_CONTEXT_JSON"] = json.dumps({**cdk_json.get("context", {}), **(context or {})})
    command = cdk_json["app"].replace("python ", f"{sys.executable} ", 1)
    run = subprocess.run(command, shell=True, cwd=app_dir, env=environment, capture_output=True, text=True)
    if run.returncode != 0:
        raise AssemblyError(f"`{cdk_json['app']}` failed:\n{run.stderr[-4000:]}")
    return outdir
