"""``make screenshots``: the console's main states as the small PNGs docs/console.md shows.

Runs local mode on a temporary data dir with a generated speech clip, drives the
console in Debian's Chromium as the browser tests do, and writes each state to
``docs/images/console-<state>.png``, reduced to a 128-colour palette by ffmpeg's
palettegen so the committed images stay small. Transcription is the real
faster-whisper when a model loads offline, else the deterministic fake provider.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from clipline.asr.fake import FakeTranscriber
from clipline.local.media_server import MediaServer
from clipline.media.ffmpeg_binary import find_ffmpeg

from .conftest import make_speech_video, offline_whisper_model
from .console_page import ConsolePage, browser_missing_reason, chromium
from .local.conftest import start_service

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
PALETTE = "split[a][b];[a]palettegen=max_colors=128:stats_mode=diff[p];[b][p]paletteuse=dither=none"


def _small_png(ffmpeg: str, screenshot: Path, target: Path) -> None:
    subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(screenshot), "-vf", PALETTE, str(target)],
        check=True,
    )


def main() -> int:
    reason = browser_missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    ffmpeg = find_ffmpeg(None)
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clipline-screenshots-") as folder:
        root = Path(folder)
        media = root / "media"
        media.mkdir()
        make_speech_video(ffmpeg, media / "talk.mp4")
        model = offline_whisper_model()
        settings = {"whisper_model": model} if model else {}
        running = start_service(root, transcriber=None if model else FakeTranscriber(), asr_workers=1, **settings)
        shots = root / "shots"
        try:
            with MediaServer(media) as source, chromium() as browser:
                console = ConsolePage.open(browser, running.service.base_url + "/console/")
                console.enter_key(running.client.api_key)
                console.load_source(source.url("talk.mp4"))
                console.seek_player(0.5)
                console.page.click("#set-in")
                console.seek_player(12.5)
                console.page.click("#set-out")
                console.seek_player(6.0)
                console.choose(transcribe=True, burn_subtitles=True)
                console.screenshot("range", shots)
                job_id = console.create_job()
                status = console.wait_for_status(timeout=180)
                if status != "succeeded":
                    raise SystemExit(f"the job {job_id} ended {status}: {console.page.text_content('#job-error')}")
                console.wait_for("() => document.querySelectorAll('#transcript li.cue').length || null", timeout=30)
                # The second cue, shown still at its start: the same picture every time
                start = console.page.evaluate("() => document.getElementById('result-clip').textTracks[0].cues[1].startTime")
                console.seek("result-clip", start)
                console.wait_for("() => document.querySelector('#transcript li.cue:nth-child(2).active') ? true : null")
                console.page.click("#jobs-refresh")
                console.wait_for(
                    "(id) => document.querySelector(`#jobs-table tr.job-row[data-job-id='${id}']`) ? true : null", job_id
                )
                console.screenshot("results", shots)
        finally:
            running.service.stop()
        for shot in sorted(shots.glob("*.png")):
            target = IMAGES / f"console-{shot.name}"
            _small_png(ffmpeg, shot, target)
            print(f"{target.relative_to(IMAGES.parents[1])}: {target.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
