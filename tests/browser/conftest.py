"""Browser tests of the console: headless Chromium (the system's, e.g. Debian's ``chromium``)
driven by Playwright's Python API. Skipped, saying why, only where no Chromium can be found.

``SESFLOW_CHROMIUM`` names the browser binary; otherwise ``chromium`` / ``chromium-browser`` /
``google-chrome`` on PATH. Screenshots of every page go to ``.artifacts/console/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sesflow.console.server import Server, serve
from sesflow.target import Target

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".artifacts" / "console"


def chromium_path() -> str | None:
    named = os.environ.get("SESFLOW_CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium on this machine (install Debian's `chromium`, or set SESFLOW_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def console(stack: Target) -> Iterator[str]:
    server: Server
    server, url = serve(stack, 0)
    yield url.rstrip("/")
    server.shutdown()
    server.server_close()


class Page:
    """A browser page that records console errors, page errors and every request it made."""

    def __init__(self, page: Any, base: str) -> None:
        self.page, self.base = page, base
        self.errors: list[str] = []
        self.requests: list[str] = []  # every request the page started (some are then blocked)
        self.loaded: list[str] = []  # the requests that got an answer: what reached the network
        self.blocked: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("requestfinished", lambda r: self.loaded.append(r.url))
        page.on("requestfailed", lambda r: self.blocked.append(f"{r.url} {r.failure}"))

    def go(self, path: str) -> Any:
        resp = self.page.goto(self.base + path)
        assert resp is not None
        return resp

    def shot(self, name: str) -> None:
        """The whole page; the viewport is made as tall as the page first (a full-page capture
        leaves the sandboxed preview iframe blank: it renders out of process)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        size = self.page.viewport_size
        height = min(int(self.page.evaluate("document.documentElement.scrollHeight")), 4000)
        self.page.set_viewport_size({"width": size["width"], "height": height})
        self.page.wait_for_timeout(200)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        self.page.set_viewport_size(size)


@pytest.fixture
def page(browser: Any, console: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = Page(context.new_page(), console)
    yield p
    context.close()
