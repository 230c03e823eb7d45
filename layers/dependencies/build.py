"""The Python dependencies layer, and what of ``functions/`` the code asset leaves out.

Every zip Lambda shares one layer with clipline's runtime requirements, built
for Lambda's Python 3.12 on x86_64 whatever machine synthesises the stack: pip
picks manylinux wheels for that platform, and compiles nothing for it. The
built layer is kept under ``build/layers/`` keyed by the requirement list and
the repository's ``constraints.txt`` (the exact versions the tests ran with),
so only the first ``cdk synth`` (and any change of either) needs the package
index.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = REPO_ROOT / "functions"
BUILD_DIR = REPO_ROOT / "build" / "layers"
# pyproject.toml gives floors; these are the versions development, CI and so the layer use.
CONSTRAINTS_FILE = REPO_ROOT / "constraints.txt"

# Lambda's runtime ships boto3 and botocore. A botocore in the layer (aws-xray-sdk
# pulls it in) would shadow the runtime's and pair it with the runtime's boto3 at
# a different version; left out, the layer is also about 30 MB smaller unzipped,
# room the ffmpeg layer's 165 MB leaves scarce. The tradeoff: in Lambda the
# runtime's versions run, updated on AWS's schedule, not the ones pyproject.toml's
# floor names or the tests ran with.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")

LAMBDA_PYTHON_VERSION = "3.12"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
PIP_TARGET_OPTIONS = (
    "--platform", LAMBDA_PLATFORM,
    "--implementation", "cp",
    "--python-version", LAMBDA_PYTHON_VERSION,
    "--only-binary=:all:",
    "--upgrade",
    # Bytecode compiled here would be for this interpreter, not Lambda's, and would differ per build.
    "--no-compile",
)  # fmt: skip

# The file in the layer that records what was installed, and by which options;
# a build whose record matches is reused as it is.
MANIFEST_NAME = "requirements.txt"

# What pip prints when it cannot reach the package index (as opposed to a resolution failure).
_UNREACHABLE_INDEX = re.compile(
    r"NewConnectionError|ConnectTimeoutError|ReadTimeoutError|ProxyError|SSLError|"
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"No route to host|Connection refused|nodename nor servname"
)


class DependenciesLayerError(RuntimeError):
    """pip could not build the layer; ``index_unreachable`` tells whether the package index was out of reach."""

    def __init__(self, message: str, index_unreachable: bool) -> None:
        super().__init__(message)
        self.index_unreachable = index_unreachable


def runtime_requirements() -> list[str]:
    """``[project].dependencies`` of pyproject.toml without the ones Lambda's runtime provides."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    return [
        requirement
        for requirement in project["dependencies"]
        if _distribution_name(requirement) not in RUNTIME_PROVIDED
    ]


# Runs pip with these arguments, raising DependenciesLayerError for the layer at the given directory.
PipRunner = Callable[[list[str], Path], None]


def dependencies_layer_dir(constraints: Path = CONSTRAINTS_FILE) -> Path:
    """Where the layer for the current requirements and constraints is kept (``build/`` is not committed)."""
    digest = hashlib.sha256(_manifest(runtime_requirements(), constraints).encode()).hexdigest()[:16]
    return BUILD_DIR / f"dependencies-{digest}"


def build_dependencies_layer(
    out_dir: Path | None = None, *, constraints: Path = CONSTRAINTS_FILE, pip: PipRunner | None = None
) -> Path:
    """The layer directory (``out_dir/python/...``), built with pip unless a matching build is there.

    ``out_dir`` defaults to ``dependencies_layer_dir(constraints)``. pip installs the
    requirements at the versions ``constraints`` pins. A build is written to a sibling
    directory and renamed into place under a lock beside ``out_dir``, so an interrupted
    one is never reused, builds running at once (parallel synths, test workers) make
    one layer between them, and ``out_dir/requirements.txt`` records what it holds.
    ``pip`` replaces the pip run (tests).

    Raises:
        DependenciesLayerError: pip failed; its message says whether the package
            index was unreachable and how to get a cached build.
    """
    run_pip = pip or _pip
    requirements = runtime_requirements()
    out_dir = Path(out_dir) if out_dir is not None else dependencies_layer_dir(constraints)
    manifest = _manifest(requirements, constraints)
    if _is_built(out_dir, manifest):
        return out_dir

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir.parent / f".{out_dir.name}.lock"):
        # Another build may have finished while this one waited: it is as good, and in use, so keep it.
        if _is_built(out_dir, manifest):
            return out_dir
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
        staging.chmod(0o755)
        try:
            wheels = staging / "wheels"
            pinned = ["--constraint", str(constraints)]
            # Some requirements (srt) publish only a source distribution, which a --platform
            # install refuses. Built here first, a pure-Python one becomes a py3-none-any wheel
            # that suits Lambda too; one that compiles code would not, and the install says so.
            run_pip(["wheel", "--no-deps", "--wheel-dir", str(wheels), *pinned, *requirements], out_dir)
            run_pip(
                ["install", "--target", str(staging / "python"), "--find-links", str(wheels),
                 *PIP_TARGET_OPTIONS, *pinned, *requirements],
                out_dir,
            )  # fmt: skip
            shutil.rmtree(wheels, ignore_errors=True)
            _remove_runtime_provided(staging / "python")
            # Console scripts (naming this machine's interpreter) and man pages: nothing in Lambda uses them.
            for data in ("bin", "share"):
                shutil.rmtree(staging / "python" / data, ignore_errors=True)
            (staging / MANIFEST_NAME).write_text(manifest, "utf-8")
            # Not a complete build (checked above, under the lock): what is there was interrupted.
            shutil.rmtree(out_dir, ignore_errors=True)
            try:
                staging.rename(out_dir)
            except OSError:
                if not _is_built(out_dir, manifest):  # with no lock, another build may have finished first
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir


@contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if missing); without POSIX locks, none."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no POSIX locks (Windows), where synthesis is unsupported anyway
        yield
        return
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def function_code_excludes() -> list[str]:
    """Patterns for ``Code.from_asset("functions", exclude=...)`` (CDK's default glob ignore mode).

    Local mode (``clipline.local``, ``clipline.adapters.local``) and the simulated
    AWS account (``clipline.aws_sim``) are reached only from the CLI; no handler and
    nothing ``composition.build_aws_services`` builds imports them, which tests/infrastructure/test_assets.py checks by importing
    every handler from the asset in an environment without it.
    """
    return [
        "__pycache__",
        "*.pyc",
        "*.egg-info",
        "clipline/local",
        "clipline/adapters/local",
        "clipline/aws_sim",
    ]


def _is_built(out_dir: Path, manifest: str) -> bool:
    recorded = out_dir / MANIFEST_NAME
    return recorded.is_file() and recorded.read_text("utf-8") == manifest and (out_dir / "python").is_dir()


def _pip(arguments: list[str], out_dir: Path) -> None:
    command = [sys.executable, "-m", "pip", *arguments, "--disable-pip-version-check", "--no-input"]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise _pip_failure(run.stdout + run.stderr, out_dir)


def _distribution_name(requirement: str) -> str:
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if name is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


def _manifest(requirements: list[str], constraints: Path) -> str:
    lines = [
        "# Installed into python/ for Lambda by layers/dependencies/build.py with",
        "# pip wheel --no-deps (for source-only requirements), then",
        f"# pip install --target python {' '.join(PIP_TARGET_OPTIONS)} --constraint constraints.txt",
        f"# then removed, as the runtime provides them: {', '.join(RUNTIME_PROVIDED)}; and bin/, share/",
        "# constraints.txt:",
        *(f"#   {pin}" for pin in _constraint_lines(constraints)),
        *requirements,
    ]
    return "\n".join(lines) + "\n"


def _constraint_lines(constraints: Path) -> list[str]:
    """The pins of a constraints file, without its comments, so only a changed pin makes a new layer."""
    lines = (line.split("#", 1)[0].strip() for line in constraints.read_text("utf-8").splitlines())
    return [line for line in lines if line]


def _remove_runtime_provided(site: Path) -> None:
    """Uninstall ``RUNTIME_PROVIDED`` from ``site`` by their RECORDs (a dependency, e.g. aws-xray-sdk, pulls them in)."""
    for info in site.glob("*.dist-info"):
        # A dist-info folder is named <name>-<version>.dist-info, with "-" in the name written as "_".
        if _distribution_name(info.name.split("-", 1)[0]) not in RUNTIME_PROVIDED:
            continue
        record = info / "RECORD"
        top_levels = set()
        for line in record.read_text("utf-8").splitlines():
            relative = line.rsplit(",", 2)[0]
            if relative:
                top_levels.add(Path(relative).parts[0])
        for name in top_levels:
            path = site / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()


def index_unreachable(pip_output: str) -> bool:
    """Whether pip's output shows it could not connect to the package index (pip says so only when it retries)."""
    return _UNREACHABLE_INDEX.search(pip_output) is not None


def _pip_failure(output: str, out_dir: Path) -> DependenciesLayerError:
    tail = "\n".join(output.strip().splitlines()[-8:])
    if index_unreachable(output):
        return DependenciesLayerError(
            f"pip cannot reach the package index, and there is no cached build at {out_dir}. "
            "Run `cdk synth` (or build_dependencies_layer()) once with network access, or point "
            "PIP_INDEX_URL at a reachable mirror (PIP_FIND_LINKS at a folder of wheels); later "
            f"builds reuse the cache offline.\npip said:\n{tail}",
            index_unreachable=True,
        )
    return DependenciesLayerError(
        f"pip could not install the Lambda dependencies for Python {LAMBDA_PYTHON_VERSION} on "
        f"{LAMBDA_PLATFORM}: a requirement may have no wheel for it (see pip's output), and there is "
        f"no cached build at {out_dir}.\npip said:\n{tail}",
        index_unreachable=False,
    )
