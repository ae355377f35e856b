"""The standings page in a real browser: Debian's headless Chromium, driven through the
DevTools protocol, on a phone-sized window. It opens `/classements/departements`, checks the
visible ranks and the "Compte introuvable via l’API Instagram" badge with its visible legend,
that the page asks nothing from outside the server, that the live updates connect and refresh
the table when the ranking changes, and saves a screenshot in test-artifacts/. It then opens
that territory's page and checks the visible notice and its checklist.

Chromium is started with the machine notes' flags (no sandbox as root, no GPU, no background
networking), a fresh profile, and `--remote-debugging-port=0`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from services.common.localstack import RedisServer
from services.common.settings import Settings
from tests.integration.test_api_story import (
    DEAD,
    Story,
    live_api,
    push_rank_change,
    tell_story,
)

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
LIVE_ORDER = ["dep-32", "dep-52", "dep-75", "dep-38", "dep-09", "dep-01", "dep-31"]

# What a reader sees: each row's rank, name and the text of its badges, with visibility.
READ_ROWS = """
(() => {
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.visibility !== 'hidden'
      && style.display !== 'none' && box.right > 0 && box.left < innerWidth;
  };
  return [...document.querySelectorAll('#classement tbody tr')].map((row) => ({
    id: row.id.replace(/^t-/, ''),
    rank: row.querySelector('.rank').innerText.trim(),
    rankVisible: visible(row.querySelector('.rank')),
    name: row.querySelector('.name').innerText.trim(),
    badges: [...row.querySelectorAll('.badge')].filter(visible).map((b) => b.innerText.trim()),
  }));
})()
"""

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


@pytest.fixture(scope="module")
def pages_url(redis_server: RedisServer, tmp_path_factory) -> Iterator[tuple[str, str]]:
    settings = Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/13",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("pages"),
    )
    story: Story = asyncio.run(tell_story(settings.redis_url))
    assert story.rank_change_seqs["departements"] == 2
    with live_api(settings) as url:
        yield url, settings.redis_url


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


async def test_standings_page_shows_ranks_and_the_dead_link_badge_and_updates_live(
    browser: DevTools, pages_url: tuple[str, str]
):
    base, redis_url = pages_url
    await browser.send("Page.enable")
    await browser.send("Network.enable")
    await browser.send("Page.navigate", url=f"{base}/classements/departements")
    await browser.poll("document.readyState === 'complete'", "the page to load")

    rows = await browser.evaluate(READ_ROWS)
    assert [row["id"] for row in rows] == LIVE_ORDER
    assert [row["rank"] for row in rows] == [str(n) for n in range(1, 8)]
    assert all(row["rankVisible"] for row in rows)
    badges = {row["id"]: row["badges"] for row in rows}
    assert len(badges[DEAD]) == 1
    assert badges[DEAD][0].startswith("⚠ Compte introuvable via l’API Instagram")
    assert "inopérant" not in badges[DEAD][0]
    legend = await browser.evaluate(VISIBLE_TEXT % "#link-legend")
    assert legend and "supprimé, renommé, privé ou non professionnel" in legend
    assert badges["dep-01"] == ["simulé"]
    assert all(not b for tid, b in badges.items() if tid not in (DEAD, "dep-01"))
    title = await browser.evaluate("document.querySelector('h1').innerText")
    assert title == "Départements"  # the live list: every ranked territory, by pages
    # Nothing but this server is asked for (no CDN, no web font, no tracker).
    requested = [
        event["params"]["request"]["url"]
        for event in browser.events
        if event.get("method") == "Network.requestWillBeSent"
    ]
    assert requested and all(url.startswith(base) for url in requested), requested

    await screenshot(browser, "classement-departements.png")

    # Progressive enhancement: the stream connects, and a rank change refreshes the table.
    await browser.poll(
        "document.getElementById('live-status').innerText.includes('en direct')",
        "the live updates to connect",
    )
    seq = await push_rank_change(redis_url, "dep-31", 900_000, "2021-07-04T06:00:00Z")
    assert seq == 3  # Haute-Garonne moved: a rank-change event
    async with httpx.AsyncClient() as client:
        now = (await client.get(f"{base}/api/v1/standings/departements")).json()
    expected = [item["id"] for item in now["items"]]
    assert expected != LIVE_ORDER
    await browser.poll(
        "[...document.querySelectorAll('#classement tbody tr')].map((r) => r.id).join() === "
        f"{','.join('t-' + tid for tid in expected)!r}",
        "the table to show the new order without a reload",
    )
    status = await browser.evaluate("document.getElementById('live-status').innerText")
    assert status.startswith("Classement mis à jour")
    await screenshot(browser, "classement-departements-live.png")


async def test_dead_territory_page_shows_what_the_territory_can_check(
    browser: DevTools, pages_url: tuple[str, str]
):
    base, _ = pages_url
    await browser.send("Page.enable")
    await browser.send("Page.navigate", url=f"{base}/territoires/{DEAD}")
    await browser.poll("document.readyState === 'complete'", "the page to load")
    notice = await browser.evaluate(VISIBLE_TEXT % "section.notice")
    assert notice, "the account notice is not visible"
    assert "Compte introuvable via l’API Instagram : supprimé, renommé, privé ou non" in notice
    assert "Ce que le territoire peut vérifier" in notice
    assert "compte professionnel (Entreprise ou Créateur)" in notice
    assert "contactez l’observatoire" in notice
    await screenshot(browser, "territoire-lien-introuvable.png")


async def screenshot(browser: DevTools, name: str) -> Path:
    """Save the whole page as a PNG in test-artifacts/."""
    shot = await browser.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000
    return path
