"""Headless Chromium for the page tests: Debian's `chromium`, driven through the DevTools
protocol (no WebDriver, no npm package), with the machine notes' flags (no sandbox as root, no
GPU, no background networking), a fresh profile and `--remote-debugging-port=0`.

`DevTools` is a minimal client on one page target; `screenshot` saves the whole page as a PNG in
test-artifacts/; `set_width` emulates a phone (360 px) or a laptop (1280 px) window; `type_text`
and `press` send real key events, so a page's scripts see what a reader's typing fires."""

from __future__ import annotations

import asyncio
import base64
import itertools
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=412,1400",
    "--remote-debugging-port=0",
]
# The text of the element a selector names, if it is shown on screen (else null).
VISIBLE_TEXT = """
(() => {
  const el = document.querySelector('%s');
  if (!el) return null;
  const box = el.getBoundingClientRect();
  const style = getComputedStyle(el);
  const shown = box.width > 0 && box.height > 0 && style.visibility !== 'hidden'
    && style.display !== 'none';
  return shown ? el.innerText.replace(/\\s+/g, ' ').trim() : null;
})()
"""


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Debian's chromium is not installed (apt-get install chromium; "
            "scripts/bootstrap.sh installs it)",
            pytrace=False,
        )
    return path


class DevTools:
    """A minimal Chrome DevTools Protocol client on one page target."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        await self.socket.send_json({"id": message_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.socket.receive_json(), 30)
            if message.get("id") == message_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def poll(self, expression: str, what: str, seconds: float = 15.0) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {seconds} s waiting for {what}")


async def screenshot(browser: DevTools, name: str) -> Path:
    """Save the whole page as a PNG in test-artifacts/."""
    shot = await browser.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000
    return path


async def set_width(browser: DevTools, width: int) -> None:
    """Lay the page out as on a window `width` CSS pixels wide (a phone below 600)."""
    await browser.send(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=900,
        deviceScaleFactor=1,
        mobile=width < 600,
    )


# Virtual key codes of the keys the tests press.
_KEYS = {"Enter": 13, "Escape": 27, "ArrowDown": 40, "ArrowUp": 38}


async def press(browser: DevTools, key: str) -> None:
    """Press and release one named key (Enter, Escape, ArrowDown, ArrowUp)."""
    code = _KEYS[key]
    extra = {"text": "\r"} if key == "Enter" else {}
    await browser.send(
        "Input.dispatchKeyEvent",
        type="keyDown",
        key=key,
        code=key,
        windowsVirtualKeyCode=code,
        **extra,
    )
    await browser.send(
        "Input.dispatchKeyEvent", type="keyUp", key=key, code=key, windowsVirtualKeyCode=code
    )


async def type_text(browser: DevTools, text: str) -> None:
    """Type `text` into the focused element, one character at a time, as a reader would."""
    for char in text:
        await browser.send("Input.dispatchKeyEvent", type="keyDown", key=char, text=char)
        await browser.send("Input.dispatchKeyEvent", type="keyUp", key=char)


async def open_page(browser: DevTools, url: str) -> None:
    """Navigate and wait until the page has loaded."""
    await browser.send("Page.navigate", url=url)
    await browser.poll(
        f"location.href === {url!r} && document.readyState === 'complete'", f"{url} to load"
    )
