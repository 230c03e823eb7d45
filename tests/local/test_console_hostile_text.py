"""Text from a job that looks like markup (subtitles, a source URL) shows in the console as text, and never runs.

On a service of its own, with a transcriber that hears markup: starting and
stopping it in test_console.py would uninstall the services that module's shared
service runs on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clipline.domain.transcripts import Segment, Transcript, Word

from .conftest import start_service
from .test_console import console_url

pytestmark = pytest.mark.slow

HOSTILE_TEXT = '<script>window.__owned = 1</script><img src="x" onerror="window.__owned = 2">'


class HostileTranscriber:
    """Speech recognised as markup: a cue whose words are a script and an image with a handler."""

    provider = "fake"
    model = "hostile"

    def model_version(self) -> str:
        return "hostile-1"

    def transcribe(self, audio: Path, language: str | None, on_progress) -> Transcript:
        words = tuple(
            Word(start=0.2 + index * 0.3, end=0.45 + index * 0.3, text=text, probability=1.0)
            for index, text in enumerate(HOSTILE_TEXT.split(" "))
        )
        segment = Segment(start=words[0].start, end=words[-1].end, text=HOSTILE_TEXT, words=words)
        return Transcript(
            language="en", duration_seconds=3.0, provider=self.provider, model=self.model,
            model_version=self.model_version(), segments=(segment,),
        )  # fmt: skip


def test_hostile_subtitles_and_source_urls_render_as_text(open_console, media_server, tmp_path: Path) -> None:
    running = start_service(tmp_path, transcriber=HostileTranscriber(), asr_workers=1)
    try:
        console = open_console(console_url(running))
        console.enter_key(running.client.api_key)
        hostile_url = media_server.url("speech.mp4") + "?name=" + HOSTILE_TEXT.replace(" ", "%20")
        console.page.fill("#source-url", hostile_url)
        console.page.click("#load-source")
        console.type_timecode("out", "00:00:03.000")
        console.choose(transcribe=True)
        console.create_job()
        assert console.wait_for_status(timeout=120) == "succeeded", console.page.text_content("#job-error")
        console.wait_for("() => document.querySelectorAll('#transcript li.cue').length || null", timeout=20)
        cue_text = " ".join(console.page.locator("#transcript .cue-text").all_text_contents())
        assert "<script>" in cue_text and "onerror" in cue_text
        assert "<script>" in console.page.text_content("#job-source")
        console.page.click("#jobs-refresh")
        console.wait_for("() => document.querySelector('#jobs-table tr.job-row') ? true : null")
        assert "<img" in console.page.text_content("#jobs-table tr.job-row")
        # Nothing of it became an element anywhere in the page (its one script is the module it loads), and
        # nothing of it ran; a blocked attempt would be a CSP or Trusted Types violation, in console.problems
        injected = console.page.evaluate(
            "() => [Array.from(document.querySelectorAll('script'), s => s.getAttribute('src')),"
            " document.querySelectorAll('img').length,"
            " document.querySelectorAll('#transcript *:not(li):not(button):not(span)').length,"
            " window.__owned === undefined]"
        )
        assert injected == [["js/main.js"], 0, 0, True]
        console.screenshot("hostile-text")
        assert console.problems == []
    finally:
        running.service.stop()
