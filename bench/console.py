"""The web console in headless Chromium against local mode: what a first visit costs, and a seek in a result.

Runs local mode in this process with a key on a large plan and drives Debian's
Chromium (the browser tests' launcher). Each figure has a baseline measured in
the same run:
- first load: --visits fresh browser contexts (no cache) open /console/ until the page
  is ready (its config read, the key form shown); time and bytes over the wire (the
  page and every module). Baseline: the same fresh context opening /health, the
  smallest document the gateway serves.
- seek: a --clip-seconds clip, played in the page from its signed link and seeked to
  90 % of its length, as clicking a late cue does; the bytes the gateway sent for it.
  Baseline: the clip's size, which a player reads whole when the server ignores Range.

Exits 1 if the page reports a CSP violation or an uncaught error.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import ApiClient, Row, write_summary  # noqa: E402

from clipline.composition import SystemClock  # noqa: E402
from clipline.domain.rate_limits import UsagePlan  # noqa: E402
from clipline.local.media_server import MediaServer  # noqa: E402
from clipline.local.sample_media import make_sample_video  # noqa: E402
from clipline.local.service import LocalService  # noqa: E402
from clipline.media.ffmpeg_binary import find_ffmpeg  # noqa: E402
from clipline.settings import Settings  # noqa: E402
from tests.console_page import VIEWPORT, ConsolePage, browser_missing_reason, chromium  # noqa: E402

LARGE_PLAN = UsagePlan(rate_per_second=1000, burst=1000, quota=10**9, quota_period="day")
# The page's own resources as the navigation and resource timing entries count them.
TRANSFERRED = "() => performance.getEntries().reduce((sum, e) => sum + (e.transferSize || 0), 0)"
READY = "() => document.getElementById('key-status').textContent.length > 0 || null"


def first_loads(browser, url: str, visits: int, ready: str | None) -> tuple[list[float], int]:
    """Seconds until ``ready`` holds (or the load event) in fresh contexts, and the bytes of the last visit."""
    seconds, transferred = [], 0
    for _ in range(visits):
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url)
        if ready:
            ConsolePage(page).wait_for(ready)
        seconds.append(time.perf_counter() - started)
        transferred = page.evaluate(TRANSFERRED)
        context.close()
    return seconds, transferred


class CountingGateway:
    """Bytes the gateway writes to clients, counted at the socket file every response goes through."""

    def __init__(self, gateway) -> None:
        self.sent = 0
        handler = gateway.RequestHandlerClass
        original = handler.setup
        counter = self

        def setup(self) -> None:  # noqa: ANN001 - the handler instance
            original(self)
            write = self.wfile.write

            def counted(data: bytes) -> int:
                counter.sent += len(data)
                return write(data)

            self.wfile.write = counted

        handler.setup = setup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visits", type=int, default=10)
    parser.add_argument("--clip-seconds", type=int, default=60)
    parser.add_argument("--summary-json", type=Path)
    args = parser.parse_args()
    reason = browser_missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        write_summary(args.summary_json, [Row("console", "skipped", notes=reason)])
        return 0
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="clipline-bench-console-") as folder:
        root = Path(folder)
        media = root / "media"
        media.mkdir()
        make_sample_video(find_ffmpeg(None), media / "sample.mp4", seconds=args.clip_seconds + 10, size="1280x720")
        service = LocalService(Settings(data_dir=root / "data", allow_private_sources=True, max_clip_seconds=600), port=0)
        service.start()
        try:
            _, key = service.data.key_store(SystemClock()).create("bench", LARGE_PLAN)
            api = ApiClient(service.base_url, key)
            with MediaServer(media) as source, chromium() as browser:
                console_seconds, console_bytes = first_loads(browser, service.base_url + "/console/", args.visits, READY)
                health_seconds, health_bytes = first_loads(browser, service.base_url + "/health", args.visits, None)
                median, baseline = statistics.median(console_seconds), statistics.median(health_seconds)
                print(f"first load: median {median * 1000:.0f} ms, {console_bytes} bytes; /health {baseline * 1000:.0f} ms")
                rows.append(
                    Row(
                        "web console: first load",
                        f"{median * 1000:.0f} ms median of {args.visits}, {console_bytes / 1024:.1f} KiB",
                        f"/health {baseline * 1000:.0f} ms, {health_bytes} B",
                        f"{median / baseline:.1f}x",
                        "fresh context each (no cache); ready = config read and key form shown",
                    )
                )
                rows.append(seek_row(browser, service, api, source.url("sample.mp4"), args.clip_seconds))
        finally:
            service.stop()
    write_summary(args.summary_json, rows)
    return 0


def seek_row(browser, service, api: ApiClient, source_url: str, clip_seconds: int) -> Row:
    created = api.call("POST", "/api/jobs", {"sourceUrl": source_url, "start": 0, "end": clip_seconds}).body
    deadline = time.monotonic() + 300
    while (job := api.call("GET", f"/api/jobs/{created['id']}").body)["status"] not in ("succeeded", "failed"):
        if time.monotonic() > deadline:
            raise SystemExit(f"the clip job did not finish: {job}")
        time.sleep(0.2)
    if job["status"] != "succeeded":
        raise SystemExit(f"the clip job failed: {job['error']}")
    (clip,) = [a for a in api.call("GET", f"/api/jobs/{job['id']}/result").body["artifacts"] if a["name"] == "clip"]
    size = job["clip"]["sizeBytes"]
    counter = CountingGateway(service.gateway)
    console = ConsolePage.open(browser, service.base_url + "/console/")
    console.page.evaluate(
        "(url) => new Promise(done => { const v = document.getElementById('result-clip');"
        " v.addEventListener('loadedmetadata', () => done(), {once: true}); v.src = url; })",
        clip["url"],
    )
    counter.sent = 0
    console.page.evaluate(
        "(s) => new Promise(done => { const v = document.getElementById('result-clip');"
        " v.addEventListener('seeked', () => done(), {once: true}); v.currentTime = s; })",
        clip_seconds * 0.9,
    )
    console.wait_for("() => document.getElementById('result-clip').readyState >= 3 || null")
    sent = counter.sent
    if console.problems:
        raise SystemExit(f"the console reported: {console.problems}")
    print(f"seek to 90 %: {sent} bytes sent by the gateway; the clip is {size} bytes")
    return Row(
        "web console: seek in a result",
        f"{sent / 1024 / 1024:.2f} MiB for a seek to 90 % of a {clip_seconds} s clip",
        f"the whole clip {size / 1024 / 1024:.2f} MiB",
        f"{sent / size:.2f}",
        "Range requests on signed links; before this change the gateway answered every GET whole",
    )


if __name__ == "__main__":
    sys.exit(main())
