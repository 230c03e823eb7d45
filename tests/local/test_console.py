"""The web console at /console/, used as a person would, in a real headless Chromium against local mode.

A key is entered once, a range is set with the player, a transcribed and burned-in
job runs with the real faster-whisper and is watched to success, its results play
with their subtitle track, a cue seeks the clip, the clip downloads byte for byte,
and a second job is cancelled; the job list pages. Every page runs under the
console's own Content-Security-Policy, and any violation fails. (Hostile text:
test_console_hostile_text.py, on a service of its own.)
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipline.local.media_server import MediaServer
from .conftest import RunningService, start_service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, whisper_model: str) -> Iterator[RunningService]:
    tmp = tmp_path_factory.mktemp("console")
    running = start_service(
        tmp, max_clip_seconds=120, whisper_model=whisper_model, asr_workers=1
    )
    yield running
    running.service.stop()


def console_url(running: RunningService) -> str:
    return running.service.base_url + "/console/"


def test_the_console_is_served_with_a_strict_policy_and_names_its_api_as_its_own_origin(service) -> None:
    with urllib.request.urlopen(console_url(service), timeout=10) as answer:
        headers = answer.headers
        page = answer.read().decode()
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert '<script type="module" src="js/main.js">' in page
    with urllib.request.urlopen(service.service.base_url + "/console/js/main.js", timeout=10) as script:
        assert script.headers["Content-Type"].startswith("text/javascript")
    with urllib.request.urlopen(service.service.base_url + "/console/config.json", timeout=10) as config:
        assert json.load(config) == {"apiUrl": "/"}
    # Nothing but the site's own files: the package's Python is not served.
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(service.service.base_url + "/console/__init__.py", timeout=10)
    assert missing.value.code == 404


@pytest.fixture
def slow_source(media_dir: Path) -> Iterator[MediaServer]:
    """The media, sent slowly past their headers: a job on it is still cutting when it is cancelled."""
    with MediaServer(media_dir, trickle_after_bytes=256 * 1024, trickle_bytes_per_second=200 * 1024) as server:
        yield server


def test_a_person_picks_a_range_runs_a_subtitled_job_plays_downloads_and_cancels(
    open_console, service, media_server, slow_source, tmp_path: Path
) -> None:
    console = open_console(console_url(service))
    # Given a key entered once, kept for the tab only
    console.enter_key(service.client.api_key)
    stored = console.page.evaluate("() => [sessionStorage.getItem('clipline.apiKey'), localStorage.length, document.cookie]")
    assert stored == [service.client.api_key, 0, ""]

    # When the range is set on the player: in at the playhead, out by key, a frame forward, then back
    duration = console.load_source(media_server.url("speech.mp4"))
    assert duration == pytest.approx(13.5, abs=0.1)
    console.seek_player(1.0)
    console.page.click("#set-in")
    console.seek_player(9.0)
    console.page.locator("body").press("o")
    assert console.range_seconds() == (1.0, 9.0)
    console.page.click("#frame-forward")
    console.page.locator("body").press("o")
    assert console.range_seconds()[1] == pytest.approx(9.04, abs=0.001)
    console.page.locator("body").press(",")
    console.page.locator("body").press("o")
    assert console.range_seconds() == (1.0, 9.0)
    # ... and a typed timecode is taken as typed
    console.page.fill("#in-time", "00:00:01.500")
    console.page.locator("#in-time").press("Enter")
    console.page.locator("#in-time").blur()
    assert console.range_seconds() == (1.5, 9.0)
    drawn = console.page.evaluate("() => [document.getElementById('range').style.left, document.getElementById('range').style.width]")
    assert [float(value.rstrip("%")) for value in drawn] == [pytest.approx(1.5 / duration * 100, abs=0.5), pytest.approx(7.5 / duration * 100, abs=0.5)]

    # And transcription with burned-in subtitles is chosen, the style previewed over the player
    console.choose(transcribe=True, burn_subtitles=True)
    assert console.page.is_visible("#style-preview")
    console.page.fill("#font-size", "80")
    console.page.locator("#font-size").dispatch_event("input")
    preview_size, picture_height = console.page.evaluate(
        "() => { const v = document.getElementById('player');"
        " const scale = Math.min(v.clientWidth / v.videoWidth, v.clientHeight / v.videoHeight);"
        " return [parseFloat(getComputedStyle(document.querySelector('#style-preview .preview-text')).fontSize),"
        " v.videoHeight * scale] }"
    )
    # Sizes are pixels of a 1080-line frame, scaled to the picture as the burn-in scales them to the clip
    assert preview_size == pytest.approx(80 * picture_height / 1080, rel=0.05)
    console.screenshot("range-and-options")

    job_id = console.create_job()
    console.screenshot("running-job")
    assert console.wait_for_status() == "succeeded", console.page.text_content("#job-error")
    # Then the job's stages are drawn as the execution ran them
    events = console.page.locator("#job-events li.job-event").all_text_contents()
    assert any("Transcribe" in event for event in events) and any("BurnIn" in event for event in events), events
    job = service.client.request("GET", f"/api/jobs/{job_id}").body
    assert (job["request"]["startSeconds"], job["request"]["endSeconds"]) == (1.5, 9.0)
    assert job["request"]["burnSubtitles"] and job["request"]["subtitleStyle"]["fontSize"] == 80

    # And the clip plays with its subtitle track loaded, the burned clip beside it
    console.wait_for("() => document.querySelectorAll('#transcript li.cue').length || null", timeout=20)
    cues = console.page.evaluate(
        "() => Array.from(document.getElementById('result-clip').textTracks[0].cues, c => [c.startTime, c.endTime])"
    )
    assert cues and console.page.locator("#transcript li.cue").count() == len(cues)
    transcript = " ".join(console.page.locator("#transcript .cue-text").all_text_contents()).lower()
    assert "clip" in transcript or len(transcript.split()) >= 5, transcript
    assert console.page.is_visible("#result-burned")
    console.page.evaluate("() => document.getElementById('result-clip').play()")
    console.wait_for("() => document.getElementById('result-clip').currentTime > 0.2 || null")
    # And clicking a cue seeks the clip to it, from a clip paused at its start, so only the seek can get it there
    last_start = cues[-1][0]
    console.page.evaluate("() => document.getElementById('result-clip').pause()")
    console.seek("result-clip", 0)
    console.page.locator("#transcript li.cue button").last.click()
    # (a player can only seek where the server answers Range requests, as S3 and the gateway do)
    played_from = console.wait_for(
        "(start) => { const t = document.getElementById('result-clip').currentTime;"
        " return t >= start - 0.05 && t < start + 1.5 ? t : null }",
        last_start,
    )
    assert played_from
    # And the cue playing is the one marked
    console.wait_for("() => document.querySelector('#transcript li.cue:last-child.active') ? true : null")
    console.screenshot("results")

    # And the clip downloads, byte for byte what the job stored
    with console.page.expect_download() as download:
        console.page.click("#artifact-links a[data-artifact='clip']")
    saved = tmp_path / "clip.mp4"
    download.value.save_as(saved)
    stored_clip = next(p for p in service.artifact_files(job_id) if p.name == "clip.mp4")
    assert saved.read_bytes() == stored_clip.read_bytes()

    # And a second job, from a source that trickles, is cancelled from its panel while it runs
    console.page.fill("#source-url", slow_source.url("long.mp4"))
    console.page.click("#load-source")
    console.type_range("00:00:10.000", "00:01:50.000")
    console.choose(transcribe=True, burn_subtitles=True)
    second = console.create_job()
    assert second != job_id
    console.page.click("#cancel-job")
    assert console.wait_for_status(timeout=30) == "cancelled"
    assert service.client.request("GET", f"/api/jobs/{second}").body["status"] == "cancelled"
    assert not console.page.is_enabled("#cancel-job")

    # And the job list shows both, newest first, with their status
    console.page.click("#jobs-refresh")
    console.wait_for(
        "(id) => document.querySelector(`#jobs-table tr.job-row[data-job-id='${id}']`) ? true : null", second
    )
    rows = console.page.locator("#jobs-table tr.job-row")
    assert [rows.nth(i).get_attribute("data-job-id") for i in range(2)] == [second, job_id]
    assert "cancelled" in rows.nth(0).text_content() and "succeeded" in rows.nth(1).text_content()
    console.screenshot("job-list")
    # And the key went in a header only, never in a URL, and no call named the page as its referrer
    assert not [request.url for request in console.requests if service.client.api_key in request.url]
    sent = console.sent_headers("/api/jobs") + console.sent_headers("/artifacts/")
    assert sent and all(headers.get("x-api-key") in (None, service.client.api_key) for headers in sent)
    assert [headers for headers in sent if "referer" in headers] == []
    assert console.problems == []


def test_errors_show_their_code_message_and_correlation_id(open_console, service) -> None:
    console = open_console(console_url(service))
    console.enter_key(service.client.api_key)
    console.page.fill("#source-url", "http://127.0.0.1:1/none.mp4")
    console.page.click("#load-source")
    # The range never inverts in the console (an out before in drags in along), so the refusal here is the
    # API's: a range longer than the service allows.
    console.type_range("00:00:05.000", "00:00:02.000")
    assert console.range_seconds() == (2.0, 2.0)
    console.type_timecode("out", "00:10:00.000")
    console.page.click("#create-job")
    console.wait_for("() => !document.getElementById('error').hidden || null")
    error = console.error()
    assert error["code"] == "CLIP_TOO_LONG", error
    assert error["correlation"].removeprefix("correlation id: ")
    console.screenshot("error")
    # A wrong key is refused, and the refusal is shown the same way
    console.enter_key("not-a-key")
    console.page.click("#jobs-refresh")
    console.wait_for("() => document.querySelector('#error .error-code')?.textContent === 'FORBIDDEN' || null")
    assert console.problems == []


def test_the_job_list_pages_newest_first_and_filters_by_status(open_console, service, media_server) -> None:
    # Given 12 jobs that fail at once (a source that is not there), newer than every other job of the key
    ids = [
        service.client.create(media_server.url("missing.mp4"), 0, 1).body["id"] for _ in range(12)
    ]
    for job_id in ids:
        assert service.client.wait(job_id)["status"] == "failed"
    console = open_console(console_url(service))
    console.enter_key(service.client.api_key)
    # When the list is filtered to failed jobs
    console.page.select_option("#jobs-status", "failed")
    console.wait_for("() => document.querySelectorAll('#jobs-table tr.job-row').length === 10 || null")
    rows = console.page.locator("#jobs-table tr.job-row")
    # Then the first page holds the ten newest, newest first, and the next page the rest
    first_page = [rows.nth(i).get_attribute("data-job-id") for i in range(rows.count())]
    assert first_page == ids[::-1][:10]
    assert all("failed" in text for text in rows.all_text_contents())
    console.page.click("#jobs-next")
    console.wait_for("(id) => document.querySelector(`#jobs-table tr.job-row[data-job-id='${id}']`) ? true : null", ids[1])
    second_page = [rows.nth(i).get_attribute("data-job-id") for i in range(rows.count())]
    assert second_page[:2] == [ids[1], ids[0]]
    # And back to the first page; a row opens its job in the panel, with its code
    console.page.click("#jobs-first")
    console.wait_for("(id) => document.querySelector(`#jobs-table tr.job-row[data-job-id='${id}']`) ? true : null", ids[-1])
    console.page.click(f"#jobs-table tr.job-row[data-job-id='{ids[-1]}']")
    console.expect_text("#job-id", ids[-1])
    console.expect_text("#job-error", "SOURCE_NOT_FOUND")
    assert console.problems == []
