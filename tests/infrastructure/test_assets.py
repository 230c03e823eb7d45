"""The assets the stack deploys: the ffmpeg layer, the dependencies layer, the function code and the ASR image.

CDK's own copy functions stage the code asset and the image's build context, so
the excludes are checked with the ignore semantics a synth applies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import aws_cdk
import pytest
from aws_cdk import aws_ecr_assets

from clipline.media.burn_in import LAYER_FONTS_DIR
from clipline.workflow import ASR_WORKER_HANDLER, LAMBDA_SIZES
from layers.dependencies.build import (
    FUNCTIONS_DIR,
    LAMBDA_PLATFORM,
    MANIFEST_NAME,
    RUNTIME_PROVIDED,
    DependenciesLayerError,
    build_dependencies_layer,
    dependencies_layer_dir,
    function_code_excludes,
    index_unreachable,
    runtime_requirements,
)
from layers.ffmpeg.build import (
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    FfmpegLayerError,
    build_ffmpeg_layer,
    check_fits_lambda,
    unzipped_size,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "containers" / "asr-whisper" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

# The pydantic-core extension module Lambda's CPython 3.12 on x86_64 Linux imports.
LAMBDA_PYDANTIC_CORE = "_pydantic_core.cpython-312-x86_64-linux-gnu.so"


def _relative_files(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


@pytest.fixture(scope="session")
def ffmpeg_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ffmpeg_layer(tmp_path_factory.mktemp("ffmpeg-layer"))


@pytest.fixture(scope="session")
def function_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``functions/`` staged as ``Code.from_asset(..., exclude=function_code_excludes())`` stages it."""
    staged = tmp_path_factory.mktemp("function-code") / "asset"
    options = aws_cdk.CopyOptions(exclude=function_code_excludes())
    aws_cdk.FileSystem.copy_directory(str(FUNCTIONS_DIR.resolve()), str(staged), options)
    return staged


@pytest.fixture(scope="session")
def dependencies_layer() -> Path:
    try:
        return build_dependencies_layer()
    except DependenciesLayerError as error:
        if error.index_unreachable:
            pytest.skip(f"the package index is unreachable and no dependencies layer is cached: {error}")
        raise


@pytest.fixture(scope="session")
def asset_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean interpreter with only the runtime requirements and boto3 (which Lambda's runtime provides)."""
    venv = tmp_path_factory.mktemp("asset-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check",
         "--no-input", "--quiet", *runtime_requirements(), "boto3"],
        capture_output=True, text=True,
    )  # fmt: skip
    output = install.stdout + install.stderr
    if install.returncode != 0 and index_unreachable(output):
        pytest.skip(f"the package index is unreachable, so no clean environment can be built: {output[-500:]}")
    assert install.returncode == 0, output
    return python


def test_the_ffmpeg_layer_runs_with_libx264_and_libass(ffmpeg_layer: Path) -> None:
    # Given the layer built from the installed wheels
    ffmpeg = ffmpeg_layer / "bin" / "ffmpeg"

    # When its ffmpeg reports its version
    run = subprocess.run([str(ffmpeg), "-hide_banner", "-version"], capture_output=True, text=True, timeout=30)

    # Then it runs, is executable by anyone (Lambda's user is not the builder) and has the encoders clipline uses
    assert run.returncode == 0, run.stderr
    configuration = next(line for line in run.stdout.splitlines() if line.startswith("configuration:"))
    assert "--enable-libx264" in configuration
    assert "--enable-libass" in configuration
    assert ffmpeg.stat().st_mode & 0o555 == 0o555


def test_the_ffmpeg_layer_carries_the_fonts_and_a_fontconfig_for_opt(ffmpeg_layer: Path) -> None:
    fonts = ffmpeg_layer / "share" / "fonts"
    assert [path for path in fonts.iterdir() if path.suffix.lower() in {".ttf", ".otf"}]
    assert [path for path in fonts.iterdir() if path.name.upper().startswith("LICENSE")]

    configuration = ElementTree.parse(ffmpeg_layer / "share" / "fontconfig" / "fonts.conf").getroot()
    assert [element.text for element in configuration.iter("dir")] == [str(LAYER_FONTS_DIR)]
    assert LAYER_FONTS_DIR == Path("/opt/share/fonts")
    # fontconfig writes its cache, and /tmp is the only place a Lambda function may write.
    (cache,) = [element.text for element in configuration.iter("cachedir")]
    assert cache.startswith("/tmp/")


def test_rebuilding_the_ffmpeg_layer_keeps_what_is_current_and_removes_what_is_stale(tmp_path: Path) -> None:
    # Given a built layer with a stale font left in it
    layer = build_ffmpeg_layer(tmp_path / "layer")
    before = (layer / "bin" / "ffmpeg").stat().st_mtime_ns
    (layer / "share" / "fonts" / "Removed.ttf").write_bytes(b"old")

    # When it is built again
    build_ffmpeg_layer(layer)

    # Then the binary was not rewritten and the stale font is gone
    assert (layer / "bin" / "ffmpeg").stat().st_mtime_ns == before
    assert not (layer / "share" / "fonts" / "Removed.ttf").exists()


def test_the_ffmpeg_layer_refuses_a_binary_lambda_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given imageio-ffmpeg pointing at a macOS (Mach-O) binary
    foreign = tmp_path / "ffmpeg"
    foreign.write_bytes(bytes.fromhex("cffaedfe07000001") + bytes(64))
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(foreign))

    # When the layer is built, then it fails and says how to get the Linux binary
    with pytest.raises(FfmpegLayerError, match="manylinux2014_x86_64") as raised:
        build_ffmpeg_layer(tmp_path / "layer")
    assert "IMAGEIO_FFMPEG_EXE" in str(raised.value)
    assert not (tmp_path / "layer" / "bin" / "ffmpeg").exists()


def test_the_function_code_asset_leaves_out_local_mode_and_bytecode(function_code: Path) -> None:
    files = _relative_files(function_code)
    for size in LAMBDA_SIZES.values():
        assert size.handler.replace(".", "/") + ".py" in files
    assert "clipline/workflow/pipeline.asl.json" in files
    assert not [name for name in files if name.startswith(("clipline/local/", "clipline/adapters/local/"))]
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc") or ".egg-info" in name]


def test_code_and_layers_fit_lambdas_unzipped_limit(
    ffmpeg_layer: Path, dependencies_layer: Path, function_code: Path
) -> None:
    total = check_fits_lambda(function_code, dependencies_layer, ffmpeg_layer)

    assert total == unzipped_size(function_code) + unzipped_size(dependencies_layer) + unzipped_size(ffmpeg_layer)
    assert total <= LAMBDA_UNZIPPED_LIMIT_BYTES
    # The binary alone is most of it; a layer that lost it would still "fit".
    assert unzipped_size(ffmpeg_layer) > 100 * 1024 * 1024


def test_check_fits_lambda_names_the_sizes_when_over_the_limit(tmp_path: Path) -> None:
    # Given a directory one byte over the limit (a sparse file: no disk is used)
    code, oversized = tmp_path / "code", tmp_path / "oversized"
    code.mkdir()
    oversized.mkdir()
    (code / "handler.py").write_bytes(b"x" * 1000)
    with (oversized / "big.bin").open("wb") as big:
        big.truncate(LAMBDA_UNZIPPED_LIMIT_BYTES + 1 - 1000)
    assert check_fits_lambda(code) == 1000

    # When it is checked with the code, then the error names the total, the limit and each part
    with pytest.raises(ValueError, match=r"250\.0 MiB limit") as raised:
        check_fits_lambda(code, oversized)
    assert str(oversized) in str(raised.value) and str(code) in str(raised.value)


def test_runtime_requirements_are_the_projects_without_what_lambda_provides() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    provided = [req for req in project["dependencies"] if re.match(r"(boto3|botocore)\b", req)]

    assert provided, "pyproject.toml no longer lists boto3; revisit RUNTIME_PROVIDED"
    assert runtime_requirements() == [req for req in project["dependencies"] if req not in provided]


@pytest.mark.slow
def test_the_dependencies_layer_is_built_for_lambdas_python(dependencies_layer: Path) -> None:
    site = dependencies_layer / "python"
    files = _relative_files(site)

    assert f"pydantic_core/{LAMBDA_PYDANTIC_CORE}" in files
    assert "aws_lambda_powertools/__init__.py" in files
    assert "aws_xray_sdk/__init__.py" in files  # the [tracer] extra
    top_levels = {name.split("/")[0] for name in files}
    assert not top_levels & {"boto3", "botocore", "s3transfer", "bin"}
    assert not [name for name in files if name.endswith(".pyc") or re.search(r"cpython-3(?!12)\d+", name)]
    manifest = (dependencies_layer / MANIFEST_NAME).read_text()
    assert LAMBDA_PLATFORM in manifest and all(req in manifest.splitlines() for req in runtime_requirements())
    assert set(RUNTIME_PROVIDED) >= {"boto3", "botocore"}


def test_without_the_index_or_a_cache_the_dependencies_layer_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a package index nothing listens at, and no pip configuration adding another source
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")
    monkeypatch.setenv("PIP_RETRIES", "1")

    # When the layer is built where there is no cached build
    with pytest.raises(DependenciesLayerError) as raised:
        build_dependencies_layer(tmp_path / "dependencies")

    # Then the error says the index was unreachable and how to get a cache, and leaves nothing behind
    assert raised.value.index_unreachable
    assert "cannot reach the package index" in str(raised.value)
    assert "once with network access" in str(raised.value)
    # (the lock file stays: removing it would let a waiting build lock a different file)
    assert [path.name for path in tmp_path.iterdir()] in ([], [".dependencies.lock"])


_IMPORT_HANDLERS = """
import importlib, json, socket, sys

def refuse(*args, **kwargs):
    raise OSError("the network was used while importing a handler")

socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

for module in json.loads(sys.argv[1]):
    handler = importlib.import_module(module).lambda_handler
    assert callable(handler), module

from clipline.composition import build_aws_services
from clipline.settings import Settings

services = build_aws_services(Settings())
if sys.argv[2] == "with-ffmpeg-layer":
    assert services.subtitle_burner is not None, "no fonts: burn-in would fail every job"
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "function_kind",
    [
        "with-ffmpeg-layer",
        # The API and bookkeeping functions have no ffmpeg layer and must still start.
        "without-ffmpeg-layer",
    ],
)
def test_the_lambda_asset_imports_every_handler_without_local_mode_or_extras(
    asset_python: Path, function_code: Path, ffmpeg_layer: Path, tmp_path: Path, function_kind: str
) -> None:
    # Given the staged code asset, an interpreter with only the runtime requirements,
    # and the environment the stack gives a function (with the layer: at its built path)
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(function_code),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        # Tracing is on in Lambda, so the X-Ray SDK is imported and patches boto3 as it would there.
        "AWS_LAMBDA_FUNCTION_NAME": "clipline-test",
        "CLIPLINE_MODE": "aws",
        "CLIPLINE_ASR_PROVIDER": "transcribe",
        "CLIPLINE_ARTIFACTS_BUCKET": "clipline-artifacts",
        "CLIPLINE_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:clipline",
    }
    if function_kind == "with-ffmpeg-layer":
        # In Lambda the fonts are found at /opt/share/fonts unasked; here the layer is elsewhere.
        environment["CLIPLINE_FFMPEG"] = str(ffmpeg_layer / "bin" / "ffmpeg")
        environment["CLIPLINE_FONTS_DIR"] = str(ffmpeg_layer / "share" / "fonts")
    handlers = sorted({size.handler for size in LAMBDA_SIZES.values()})

    # When every handler is imported there and the AWS object graph is built
    run = subprocess.run(
        [str(asset_python), "-c", _IMPORT_HANDLERS, json.dumps(handlers), function_kind],
        capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=120,
    )  # fmt: skip

    # Then all of it worked from the asset alone, without local mode, ffmpeg's or the font's wheel
    assert run.returncode == 0, run.stderr[-3000:]
    modules = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(handlers) <= set(modules)
    assert not [
        name for name in modules
        if name.startswith(("clipline.local", "clipline.adapters.local", "moto", "imageio_ffmpeg",
                            "font_source_sans_pro", "faster_whisper"))
    ]  # fmt: skip
    assert any(name.startswith("aws_xray_sdk") for name in modules)


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _dockerfile_env() -> dict[str, str]:
    pairs = [pair for keyword, rest in _dockerfile_instructions() if keyword == "ENV" for pair in rest.split()]
    return dict(pair.split("=", 1) for pair in pairs)


def test_the_asr_image_runs_the_worker_with_the_whisper_extra_and_a_baked_model() -> None:
    instructions = _dockerfile_instructions()
    environment = _dockerfile_env()
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")

    assert instructions[0][0] == "FROM" and "public.ecr.aws/lambda/python:3.12" in instructions[0][1]
    assert "linux/amd64" in instructions[0][1]
    (command,) = [json.loads(rest) for keyword, rest in instructions if keyword == "CMD"]
    module, _, entry = command[0].rpartition(".")
    assert module == ASR_WORKER_HANDLER and entry == "lambda_handler"
    assert (FUNCTIONS_DIR / (module.replace(".", "/") + ".py")).is_file()

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "whisper" in extras
    assert re.search(r"pip install [^&]*clipline\[whisper\]", runs)
    assert not re.search(r"clipline\[[^\]]*\b(local|dev|cdk)\b", runs)

    assert environment["CLIPLINE_ASR_PROVIDER"] == "whisper"
    model = environment["CLIPLINE_WHISPER_MODEL"]
    assert f"download_model('base', output_dir='{model}')" in runs
    assert environment["CLIPLINE_FFMPEG"] == "/opt/bin/ffmpeg"
    assert re.search(r"ln -s \S+ /opt/bin/ffmpeg", runs)


def test_the_asr_images_build_context_holds_what_the_dockerfile_copies_and_nothing_else(tmp_path: Path) -> None:
    # Given a repository-shaped context with the heavy folders a real checkout has
    context = tmp_path / "repo"
    shutil.copytree(FUNCTIONS_DIR, context / "functions")
    (context / "containers" / "asr-whisper").mkdir(parents=True)
    shutil.copy(DOCKERFILE, context / "containers" / "asr-whisper" / "Dockerfile")
    for name in (".dockerignore", "pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy(REPO_ROOT / name, context / name)
    (context / "functions" / "clipline" / "__pycache__").mkdir(exist_ok=True)
    (context / "functions" / "clipline" / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"")
    heavy = [".venv", "cdk.out", ".git", "build", "data", ".demo", "tests", "bench", "docs", "node_modules", "new"]
    for name in heavy:
        (context / name).mkdir(exist_ok=True)
        (context / name / "file").write_text("not for the image")

    # When CDK stages it as the image asset's build context
    app = aws_cdk.App(outdir=str(tmp_path / "cdk.out"))
    asset = aws_ecr_assets.DockerImageAsset(
        aws_cdk.Stack(app, "Assets"), "AsrWhisper", directory=str(context), file="containers/asr-whisper/Dockerfile"
    )
    assembly = app.synth()
    staged = Path(assembly.directory) / f"asset.{asset.asset_hash}"
    files = _relative_files(staged)

    # Then the Dockerfile and every COPY source are there, and nothing heavy is
    assert "containers/asr-whisper/Dockerfile" in files
    for keyword, rest in _dockerfile_instructions():
        if keyword == "COPY":
            for source in rest.split()[:-1]:
                assert (staged / source).exists(), source
    assert f"functions/{ASR_WORKER_HANDLER.replace('.', '/')}.py" in files
    assert not [name for name in files if name.split("/")[0] in heavy]
    assert not [name for name in files if "__pycache__" in name or ".egg-info" in name]


def test_the_asr_image_installs_the_versions_constraints_txt_pins() -> None:
    instructions = _dockerfile_instructions()
    copied = {
        source: rest.split()[-1]
        for keyword, rest in instructions
        if keyword == "COPY"
        for source in rest.split()[:-1]
    }
    assert "constraints.txt" in copied
    target = copied["constraints.txt"].rstrip("/") + "/constraints.txt"
    (install,) = [rest for keyword, rest in instructions if keyword == "RUN" and "clipline[whisper]" in rest]
    assert re.search(rf"pip install [^&]*(-c|--constraint) {re.escape(target)}\s", install), install


# The dependencies layer's cache and its concurrency -----------------------------------------


class _FakePip:
    """Stands in for pip: "installs" one module into --target, slowly enough for builds to overlap."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls: list[list[str]] = []
        self.seconds = seconds
        self._lock = threading.Lock()

    def __call__(self, arguments: list[str], out_dir: Path) -> None:
        with self._lock:
            self.calls.append(arguments)
        time.sleep(self.seconds)
        if arguments[0] == "install":
            target = Path(arguments[arguments.index("--target") + 1])
            (target / "fake").mkdir(parents=True)
            (target / "fake" / "__init__.py").write_text("")

    @property
    def installs(self) -> int:
        return sum(1 for call in self.calls if call[0] == "install")


def test_the_dependencies_layer_is_installed_with_the_constraints_and_keyed_by_them(tmp_path: Path) -> None:
    # Given two constraint files that pin differently, and a third that only adds a comment
    first, second, commented = tmp_path / "first.txt", tmp_path / "second.txt", tmp_path / "commented.txt"
    first.write_text("pydantic==2.14.4\n")
    second.write_text("pydantic==2.14.5\n")
    commented.write_text("# the same pins\npydantic==2.14.4  # for the layer\n")

    # Then the cache directory changes with the pins, not with the comments
    assert dependencies_layer_dir(first) != dependencies_layer_dir(second)
    assert dependencies_layer_dir(first) == dependencies_layer_dir(commented)
    assert dependencies_layer_dir().name != dependencies_layer_dir(second).name

    # And both pip runs are given the constraints
    pip = _FakePip()
    layer = build_dependencies_layer(tmp_path / "layer", constraints=first, pip=pip)
    assert [call[0] for call in pip.calls] == ["wheel", "install"]
    for call in pip.calls:
        assert call[call.index("--constraint") + 1] == str(first)
    assert "pydantic==2.14.4" in (layer / MANIFEST_NAME).read_text()


def test_builds_of_the_same_layer_at_once_make_one_complete_layer(tmp_path: Path) -> None:
    # Given two builds of one layer that start together (as parallel synths or test workers do)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("pydantic==2.14.4\n")
    out_dir = tmp_path / "layers" / "dependencies"
    pip = _FakePip(seconds=0.3)
    results: list[Path] = []
    failures: list[BaseException] = []
    start = threading.Barrier(2)

    def build() -> None:
        start.wait()
        try:
            results.append(build_dependencies_layer(out_dir, constraints=constraints, pip=pip))
        except BaseException as failure:  # noqa: BLE001 - reported by the assertion below
            failures.append(failure)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then both succeed with the same layer, built once, and no partial build is left beside it
    assert failures == []
    assert results == [out_dir, out_dir]
    assert pip.installs == 1
    assert (out_dir / "python" / "fake" / "__init__.py").is_file()
    assert (out_dir / MANIFEST_NAME).is_file()
    assert sorted(path.name for path in out_dir.parent.iterdir()) == [".dependencies.lock", "dependencies"]

    # And a later build reuses it without pip, leaving it untouched
    before = (out_dir / MANIFEST_NAME).stat().st_mtime_ns
    assert build_dependencies_layer(out_dir, constraints=constraints, pip=pip) == out_dir
    assert pip.installs == 1 and (out_dir / MANIFEST_NAME).stat().st_mtime_ns == before
