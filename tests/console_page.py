"""The web console driven in a real headless Chromium: Debian's package, through Playwright.

Used by the console's browser tests on both hosts and by ``make screenshots``.
Playwright drives the system's Chromium (``executable_path``) and never downloads
a browser. Where no Chromium is installed the browser tests skip and say why,
unless ``CLIPLINE_BROWSER_TESTS=required`` (``.ci/run`` sets it), when they fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# Screenshots of the tests' states are artifacts of the run; docs/images holds the committed ones.
SCREENSHOT_DIR = Path(os.environ.get("CLIPLINE_SCREENSHOT_DIR", REPO_ROOT / "test-artifacts" / "console"))
VIEWPORT = {"width": 1280, "height": 900}
# As root and on a closed network: no sandbox, and none of Chromium's own calls home.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
)
TERMINAL = ("succeeded", "failed", "cancelled", "deleted")


def chromium_path() -> str | None:
    """Debian's Chromium (``apt-get install chromium``), or CLIPLINE_CHROMIUM's."""
    return os.environ.get("CLIPLINE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def browser_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if chromium_path() is None:
        return "no Chromium: install Debian's chromium package (.ci/run does) to run the console's browser tests"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (it is in the dev extra)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class ConsolePage:
    """One tab of the console, with what it reported: CSP violations and uncaught errors fail the tests."""

    page: Any
    problems: list[str] = field(default_factory=list)
    # Every request the page made (Playwright's Request).
    requests: list[Any] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Any, url: str, downloads: bool = True) -> ConsolePage:
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=downloads)
        # Injected by the browser itself, so the page's CSP does not apply: every violation is reported.
        context.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => console.error("
            "`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`))"
        )
        page = context.new_page()
        console = cls(page)
        page.on("pageerror", lambda error: console.problems.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda message: console.problems.append(message.text)
            if message.type == "error" and ("Content Security Policy" in message.text or "Trusted Type" in message.text)
            else None,
        )
        page.on("request", lambda request: console.requests.append(request))
        page.goto(url)
        page.locator("#api-key").wait_for()
        return console

    # -- the steps a person takes

    def enter_key(self, key: str) -> None:
        self.page.fill("#api-key", key)
        self.page.click("#save-key")
        self.expect_text("#key-status", "saved")

    def load_source(self, url: str) -> float:
        """Load ``url`` into the player; its duration once the metadata is in."""
        self.page.fill("#source-url", url)
        self.page.click("#load-source")
        return self.wait_for("() => { const v = document.getElementById('player'); return v.duration > 0 ? v.duration : null }")

    def sent_headers(self, url_part: str) -> list[dict[str, str]]:
        """The headers as sent over the network (not Playwright's provisional ones) of each request to a URL with ``url_part``."""
        return [request.all_headers() for request in self.requests if url_part in request.url]

    def close(self) -> None:
        self.page.context.close()

    def seek(self, video: str, seconds: float) -> None:
        """Seek the video element ``video`` (an id) and wait for it to get there, 10 s at the most."""
        self.page.evaluate(
            "([id, s]) => new Promise((done, fail) => { const v = document.getElementById(id);"
            " setTimeout(() => fail(new Error(`no seeked event from #${id} within 10 s`)), 10000);"
            " v.addEventListener('seeked', () => done(), {once: true}); v.currentTime = s; })",
            [video, seconds],
        )

    def seek_player(self, seconds: float) -> None:
        self.seek("player", seconds)

    def type_timecode(self, field: str, timecode: str) -> None:
        """Type ``timecode`` into ``#in-time`` or ``#out-time`` (``field``: in or out), as a person edits it."""
        self.page.fill(f"#{field}-time", timecode)
        self.page.locator(f"#{field}-time").blur()

    def type_range(self, start: str, end: str) -> None:
        self.type_timecode("in", start)
        self.type_timecode("out", end)

    def range_seconds(self) -> tuple[float, float]:
        return (
            float(self.page.get_attribute("#in-time", "data-seconds")),
            float(self.page.get_attribute("#out-time", "data-seconds")),
        )

    def choose(self, *, transcribe: bool = False, burn_subtitles: bool = False, accuracy: str = "frame") -> None:
        self.page.select_option("#accuracy", accuracy)
        self.page.set_checked("#transcribe", transcribe)
        self.page.set_checked("#burn-subtitles", burn_subtitles)

    def create_job(self) -> str:
        """Press Create job; the new job's id, once the job panel shows it."""
        previous = self.page.text_content("#job-id") if self.page.is_visible("#job") else None
        self.page.click("#create-job")
        return self.wait_for(
            "(previous) => { const id = document.getElementById('job-id').textContent.trim();"
            " return id && id !== previous && !document.getElementById('job').hidden ? id : null }",
            previous,
        )

    def wait_for_status(self, *statuses: str, timeout: float = 180.0) -> str:
        wanted = statuses or TERMINAL
        return self.wait_for(
            "(wanted) => { const s = document.getElementById('job-status').textContent.trim();"
            " return wanted.includes(s) ? s : null }",
            list(wanted),
            timeout=timeout,
        )

    def error(self) -> dict[str, str] | None:
        if not self.page.is_visible("#error"):
            return None
        return {
            name: self.page.text_content(f"#error .error-{name}").strip()
            for name in ("code", "message", "correlation")
        }

    def screenshot(self, name: str, folder: Path = SCREENSHOT_DIR) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    # -- waiting, without string functions polled in the page (the CSP forbids eval)

    def wait_for(self, expression: str, argument: Any = None, timeout: float = 30.0) -> Any:
        """Poll ``expression`` (a JS function) until it returns a value that is not null."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.page.evaluate(expression, argument)
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"after {timeout:g} s still waiting for {expression}; console errors: {self.problems}")
            time.sleep(0.1)

    def expect_text(self, selector: str, text: str, timeout: float = 10.0) -> None:
        self.wait_for(
            "([selector, text]) => (document.querySelector(selector)?.textContent || '').includes(text) || null",
            [selector, text],
            timeout=timeout,
        )
