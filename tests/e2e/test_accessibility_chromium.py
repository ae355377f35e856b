"""Every page type passes axe-core in a real browser: headless Chromium (tests/e2e/browser.py)
opens each page over a real API on a seeded real Redis, at 360 px and 1280 px, injects the
pinned `axe-core` (npm; scripts/bootstrap.sh installs it into .run/node/ from
tests/e2e/axe/package-lock.json) and runs `axe.run`. Any violation of impact "serious" or
"critical" fails, listed with its rule, help and the elements it names; every `<details>` is
opened first, so that axe sees their contents too. No page is laid out wider than the window
(no sideways scrolling), and the header's search box is checked with its suggestions open.
One screenshot per page and width goes to test-artifacts/ (axe-<page>-<width>.png).

The data: the story of tests/integration/test_api_story.py (published editions), 250 ranked
petites villes (three list pages) and Méailles with its neighbours, as in
tests/e2e/test_find_territory_chromium.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.common.localstack import RedisServer
from services.common.settings import Settings
from tests.e2e.browser import (
    REPO_ROOT,
    DevTools,
    open_page,
    press,
    screenshot,
    set_width,
    type_text,
)
from tests.e2e.test_find_territory_chromium import MEAILLES, seed
from tests.integration.test_api_story import live_api

AXE = REPO_ROOT / ".run" / "node" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (360, 1280)
BLOCKING = ("serious", "critical")

# Every page type a reader meets: (name of its screenshots, path, the status it answers).
PAGES = [
    ("accueil", "/", 200),
    ("classement", "/classements/departements", 200),
    ("classement-page-2", "/classements/petites-villes?page=2", 200),
    ("territoire", "/territoires/dep-09", 200),  # a dead link: the notice
    ("territoire-commune", f"/territoires/{MEAILLES}", 200),  # neighbours, the gap
    ("recherche", "/recherche?q=saint+denis", 200),
    ("comparer", f"/comparer?ids=dep-32,dep-75,{MEAILLES}", 200),
    ("donnees", "/donnees", 200),
    ("methodologie", "/methodologie", 200),
    ("couverture", "/couverture", 200),
    ("erreur", "/territoires/dep-999", 404),
]

# axe's violations, reduced to what a failure report needs.
RUN_AXE = """
axe.run(document, {resultTypes: ['violations']}).then((results) =>
  results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({target: n.target, summary: n.failureSummary})),
  })))
"""
# How wide the page is laid out. Not compared with innerWidth: on a phone (mobile emulation)
# Chromium widens the layout viewport to whatever overflows, so innerWidth grows with it.
PAGE_WIDTH = "document.documentElement.scrollWidth"
OPEN_DETAILS = "document.querySelectorAll('details').forEach((d) => { d.open = true; })"


def axe_source() -> str:
    """The pinned axe-core script; fails (never skips) when the bootstrap has not installed it."""
    if not AXE.is_file():
        pytest.fail(
            f"axe-core is not installed ({AXE.relative_to(REPO_ROOT)} is missing): run "
            "scripts/bootstrap.sh (it installs tests/e2e/axe/package-lock.json with npm ci)",
            pytrace=False,
        )
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def site(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/12",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("axe"),
    )
    asyncio.run(seed(settings.redis_url))
    with live_api(settings) as url:
        yield url


async def run_axe(browser: DevTools) -> list[dict[str, Any]]:
    """axe's violations on the page as it is laid out now."""
    result = await browser.send(
        "Runtime.evaluate", expression=RUN_AXE, awaitPromise=True, returnByValue=True
    )
    if "exceptionDetails" in result:
        raise AssertionError(f"axe.run failed: {json.dumps(result['exceptionDetails'])[:2000]}")
    violations: list[dict[str, Any]] = result["result"]["value"]
    return violations


def report(violations: list[dict[str, Any]]) -> str:
    """One paragraph per violation: its rule, impact and help, then each element it names."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"]:
            summary = " ".join((node.get("summary") or "").split())
            lines.append(f"    {' > '.join(map(str, node['target']))}: {summary[:300]}")
    return "\n".join(lines)


async def inject_axe(browser: DevTools) -> None:
    """From now on, axe-core is injected into every document, before the page's own scripts."""
    await browser.send("Page.enable")
    await browser.send("Page.addScriptToEvaluateOnNewDocument", source=axe_source())


async def open_with_axe(browser: DevTools, url: str) -> None:
    """Open `url` (axe-core injected) and wait until it has loaded."""
    await open_page(browser, url)
    assert await browser.evaluate("typeof axe === 'object'"), "axe-core was not injected"


@pytest.mark.parametrize(("name", "path", "status"), PAGES, ids=[page[0] for page in PAGES])
async def test_the_page_has_no_serious_accessibility_violation_at_360_and_1280_px(
    browser: DevTools, site: str, name: str, path: str, status: int
) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{site}{path}", headers={"Accept": "text/html"})
    assert answer.status_code == status, f"{path} answered {answer.status_code}"

    await inject_axe(browser)
    found: dict[int, list[dict[str, Any]]] = {}
    too_wide: dict[int, int] = {}
    for width in WIDTHS:
        await set_width(browser, width)
        await open_with_axe(browser, f"{site}{path}")
        await browser.evaluate(OPEN_DETAILS)
        blocking = [v for v in await run_axe(browser) if v["impact"] in BLOCKING]
        if blocking:
            found[width] = blocking
        laid_out = await browser.evaluate(PAGE_WIDTH)
        if laid_out > width:
            too_wide[width] = laid_out
        await screenshot(browser, f"axe-{name}-{width}.png")

    assert not found, "\n".join(
        f"{path} at {width} px, {len(vs)} serious or critical violation(s):\n{report(vs)}"
        for width, vs in found.items()
    )
    assert not too_wide, "\n".join(
        f"{path} is laid out {laid_out} px wide in a {width} px window (sideways scrolling)"
        for width, laid_out in too_wide.items()
    )


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_search_suggestions_have_no_serious_accessibility_violation(
    browser: DevTools, site: str, width: int
) -> None:
    """The header's search box with its suggestions open and one highlighted (every page)."""
    await inject_axe(browser)
    await set_width(browser, width)
    await open_with_axe(browser, f"{site}/")
    await browser.evaluate("document.getElementById('recherche-q').focus()")
    await type_text(browser, "saint")
    await browser.poll(
        "document.querySelectorAll('#recherche-suggestions .suggestion').length > 1",
        "the suggestions",
    )
    await press(browser, "ArrowDown")
    assert await browser.evaluate(
        "document.getElementById('recherche-q').getAttribute('aria-activedescendant')"
    )
    blocking = [v for v in await run_axe(browser) if v["impact"] in BLOCKING]
    assert not blocking, f"the open suggestions at {width} px:\n{report(blocking)}"
    await screenshot(browser, f"axe-suggestions-{width}.png")


async def test_axe_reports_a_button_without_a_name(browser: DevTools, site: str) -> None:
    """The harness itself: a violation put into a page is found and counts as blocking."""
    await inject_axe(browser)
    await set_width(browser, 360)
    await open_with_axe(browser, f"{site}/")
    await browser.evaluate(
        "document.querySelector('main').insertAdjacentHTML('beforeend', '<button></button>')"
    )
    blocking = {v["id"] for v in await run_axe(browser) if v["impact"] in BLOCKING}
    assert blocking == {"button-name"}
