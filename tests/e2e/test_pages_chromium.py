"""The standings page in a real browser: Debian's headless Chromium, driven through the
DevTools protocol, on a phone-sized window. It opens `/classements/departements`, checks the
visible ranks and the "Compte introuvable via l’API Instagram" badge with its visible legend,
that the page asks nothing from outside the server, that the live updates connect and refresh
the table when the ranking changes, and saves a screenshot in test-artifacts/. It then opens
that territory's page and checks the visible notice and its checklist.

Chromium and the DevTools client: tests/e2e/browser.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from services.common.localstack import RedisServer
from services.common.settings import Settings
from tests.e2e.browser import VISIBLE_TEXT, DevTools, screenshot
from tests.integration.test_api_story import (
    DEAD,
    Story,
    live_api,
    push_rank_change,
    tell_story,
)

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
