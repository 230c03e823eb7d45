"""The AWS host, simulated: what deploying the stack costs, and a job through it against the same job in local mode.

`clipline serve --aws-sim` synthesizes the CDK app, publishes its assets and creates
the stack in moto; its summary reports each step's seconds. Then the same
frame-accurate 4 s clip of a 60 s 640x360 H.264 source, served over HTTP with Range
support, runs as a job on both hosts, one after the other: local mode (`clipline
serve`, every handler in one process) and the AWS host (each function in its own
process under the Lambda runtime client, moto's Step Functions, DynamoDB and S3 over
HTTP). The first job on the AWS host starts every function it uses cold; it is
reported on its own, and the medians are over the warm jobs after it. Each job is
timed from its POST until a status poll (every 0.1 s) sees it succeeded. Nothing here
is asserted.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, ApiClient, Row, ServeProcess, wait_for_job, write_summary  # noqa: E402

from clipline.local.media_server import MediaServer  # noqa: E402
from clipline.local.sample_media import make_sample_video  # noqa: E402
from clipline.media.ffmpeg_binary import find_ffmpeg  # noqa: E402

DEPLOY_TIMEOUT_SECONDS = 300
CLIP = {"start": 20.3, "end": 24.3}


def start_aws_host(work_dir: Path, source_port: int) -> tuple[subprocess.Popen, dict]:
    ready = work_dir / "ready.json"
    log = (work_dir / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "clipline"), "serve", "--aws-sim", "--port", "0", "--work-dir", str(work_dir),
         "--ready-file", str(ready), "--setting", f"source_ports=80,443,{source_port}"],
        cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + DEPLOY_TIMEOUT_SECONDS
    while not ready.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"clipline serve --aws-sim did not come up; its log: {work_dir / 'serve.log'}")
        time.sleep(0.2)
    return process, json.loads(ready.read_text("utf-8"))


def job_seconds(client: ApiClient, url: str) -> float:
    started = time.perf_counter()
    created = client.call("POST", "/api/jobs", {"sourceUrl": url, **CLIP})
    if created.status != 202:
        raise SystemExit(f"POST /api/jobs: {created.status} {created.body}")
    job = wait_for_job(client, created.body["id"], timeout=120)
    if job["status"] != "succeeded":
        raise SystemExit(f"job failed: {job['error']}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=6, help="warm jobs per host (default 6)")
    parser.add_argument("--summary-json", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-aws-host-") as scratch:
        root = Path(scratch)
        (root / "media").mkdir()
        make_sample_video(find_ffmpeg(None), root / "media" / "sample.mp4", seconds=60, size="640x360")
        with MediaServer(root / "media") as media:
            url = media.url("sample.mp4")
            (root / "aws").mkdir()
            process, summary = start_aws_host(root / "aws", int(media.base_url.rsplit(":", 1)[1]))
            try:
                aws = ApiClient(summary["apiUrl"], summary["apiKey"])
                cold = job_seconds(aws, url)
                print(f"AWS host, first job (cold functions): {cold:.2f} s", flush=True)
                aws_warm = [job_seconds(aws, url) for _ in range(args.jobs)]
                print("AWS host, warm jobs: " + ", ".join(f"{s:.2f}" for s in aws_warm), flush=True)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
            with ServeProcess(root / "local", {}) as local:
                client = local.client()
                job_seconds(client, url)  # uncounted warm-up, as on the other side
                local_runs = [job_seconds(client, url) for _ in range(args.jobs)]
            print("local mode, jobs: " + ", ".join(f"{s:.2f}" for s in local_runs), flush=True)

    deploy = summary["seconds"]
    aws_median, local_median = statistics.median(aws_warm), statistics.median(local_runs)
    print(f"deploy: synthesize {deploy['synthesize']:.1f} s, publish assets {deploy['publishAssets']:.1f} s, "
          f"create the stack {deploy['createStack']:.1f} s")  # fmt: skip
    print(f"median job: AWS host {aws_median:.2f} s, local mode {local_median:.2f} s, ratio {aws_median / local_median:.2f}")
    write_summary(
        args.summary_json,
        [
            Row(
                "AWS host (simulated)",
                f"4 s frame-accurate clip: {aws_median:.2f} s median warm, {cold:.2f} s cold",
                f"local mode {local_median:.2f} s",
                f"{aws_median / local_median:.2f}",
                f"{args.jobs} jobs each; deploy {sum(deploy.values()):.0f} s (synthesize {deploy['synthesize']:.0f}, "
                f"publish {deploy['publishAssets']:.0f}, create {deploy['createStack']:.0f})",
            )
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
