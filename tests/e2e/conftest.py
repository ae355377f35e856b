"""Fixtures of the browser tests: a headless Chromium per test and a DevTools session on its
page (tests/e2e/browser.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.browser import CHROMIUM_FLAGS, DevTools, chromium


@pytest.fixture
def devtools_port(tmp_path: Path) -> Iterator[str]:
    """A headless Chromium with a fresh profile; yields its DevTools port."""
    profile = tmp_path / "profile"
    log_path = tmp_path / "chromium.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            active = profile / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not active.exists() or len(active.read_text().splitlines()) < 2:
                assert process.poll() is None, log_path.read_text()[-2000:]
                assert time.monotonic() < deadline, "chromium did not open its DevTools port"
                time.sleep(0.05)
            yield active.read_text().splitlines()[0]
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
async def browser(devtools_port: str) -> AsyncIterator[DevTools]:
    """A DevTools session on the browser's page."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{devtools_port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            yield DevTools(ws)
