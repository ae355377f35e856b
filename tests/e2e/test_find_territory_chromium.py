"""Finding one's territory in a real browser (headless Chromium, tests/e2e/browser.py), as a
communicator of a small commune would: type its name in the header's search box and pick the
suggestion, tell the two Saint-Denis apart, page through the petites villes, compare three
territories, and read on the territory's page who is just above and below, its percentile
and what it would take to pass the next one. Every page is looked at 360 px and 1280 px wide
(no sideways scrolling) and saved as a screenshot in test-artifacts/.

The data: the story of tests/integration/test_api_story.py, 250 ranked petites villes
(tests/integration/test_pages_lists.py), and Méailles with twelve other petites villes of the
Alpes-de-Haute-Provence, all written by the scorer's own code into a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from services.common.localstack import RedisServer
from services.common.settings import Settings
from services.common.territories import load_registry
from tests.e2e.browser import VISIBLE_TEXT, DevTools, open_page, press, screenshot, set_width
from tests.e2e.browser import type_text as type_into
from tests.integration.test_api_story import live_api
from tests.integration.test_pages_lists import rank_accounts
from tests.integration.test_pages_lists import seed as seed_lists

MEAILLES = "com-04115"
SAINT_DENIS = {"com-93066": "Seine-Saint-Denis", "com-97411": "La Réunion"}
WIDTHS = (360, 1280)

# The suggestions as a reader sees them: each option's visible text and where it leads.
SUGGESTIONS = """
[...document.querySelectorAll('#recherche-suggestions .suggestion')]
  .filter((o) => o.getBoundingClientRect().height > 0)
  .map((o) => ({text: o.innerText.replace(/\\s+/g, ' ').trim(), url: o.dataset.url}))
"""
# True when nothing is wider than the window (no sideways scrolling of the page).
FITS = "document.documentElement.scrollWidth <= window.innerWidth"


async def seed(redis_url: str) -> None:
    """The lists' data, then Méailles and twelve neighbours of its département, ranked."""
    await seed_lists(redis_url)
    registry = load_registry()
    alpes = sorted(
        (t for t in registry.by_category("petites-villes") if t.departements == ("04",)),
        key=lambda t: (t.id != MEAILLES, t.id),
    )[:13]
    assert alpes[0].id == MEAILLES
    await rank_accounts(
        redis_url,
        alpes,
        handle_prefix="alpes",
        followers=lambda index: 2500 + 450 * ((index * 7) % 13),
        interactions=lambda index: 40 + 9 * ((index * 5) % 13),
        follows=250,
    )


@pytest.fixture(scope="module")
def site(redis_server: RedisServer, tmp_path_factory) -> Iterator[str]:
    settings = Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/12",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("find"),
    )
    asyncio.run(seed(settings.redis_url))
    with live_api(settings) as url:
        yield url


async def _suggestions_for(browser: DevTools, base: str, query: str) -> list[dict]:
    await open_page(browser, f"{base}/")
    await browser.evaluate("document.getElementById('recherche-q').focus()")
    await type_into(browser, query)
    return await browser.poll(
        f"(() => {{ const s = {SUGGESTIONS}; const answered = "
        f"document.getElementById('recherche-suggestions').dataset.query; "
        f"return answered === {query!r} && s.length && s; }})()",
        f"the suggestions for {query!r}",
    )


@pytest.mark.parametrize("width", WIDTHS)
async def test_typing_meailles_in_the_search_box_lands_on_meailles(
    browser: DevTools, site: str, width: int
):
    await browser.send("Page.enable")
    await set_width(browser, width)
    offered = await _suggestions_for(browser, site, "meailles")
    assert offered[0]["url"] == f"/territoires/{MEAILLES}"
    assert offered[0]["text"].startswith("Méailles")
    assert "Alpes-de-Haute-Provence" in offered[0]["text"]
    assert await browser.evaluate(FITS)
    await screenshot(browser, f"recherche-meailles-{width}.png")

    await press(browser, "ArrowDown")
    active = await browser.evaluate(
        "document.getElementById('recherche-q').getAttribute('aria-activedescendant')"
    )
    assert active, "the highlighted option is announced to screen readers"
    await press(browser, "Enter")
    await browser.poll(
        f"location.pathname === '/territoires/{MEAILLES}' && document.readyState === 'complete'",
        "the territory page of Méailles",
    )
    assert await browser.evaluate("document.querySelector('h1').innerText") == "Méailles"


async def test_st_denis_offers_both_saint_denis_with_their_departements(
    browser: DevTools, site: str
):
    await browser.send("Page.enable")
    await set_width(browser, 360)
    offered = await _suggestions_for(browser, site, "st denis")
    first_two = {o["url"].rsplit("/", 1)[1]: o["text"] for o in offered[:2]}
    assert set(first_two) == set(SAINT_DENIS)
    for territory_id, departement in SAINT_DENIS.items():
        assert first_two[territory_id].startswith("Saint-Denis")
        assert departement in first_two[territory_id]
    await screenshot(browser, "recherche-st-denis-360.png")

    # Without choosing a suggestion, Enter submits the form: the results page lists both too.
    await press(browser, "Enter")
    await browser.poll("location.pathname === '/recherche'", "the results page")
    await browser.poll("document.readyState === 'complete'", "the results page to load")
    results = await browser.evaluate(VISIBLE_TEXT % "main")
    assert results.count("Saint-Denis") >= 2
    assert all(departement in results for departement in SAINT_DENIS.values())


@pytest.mark.parametrize("width", WIDTHS)
async def test_page_two_of_the_petites_villes(browser: DevTools, site: str, width: int):
    await browser.send("Page.enable")
    await set_width(browser, width)
    await open_page(browser, f"{site}/classements/petites-villes")
    first = await browser.evaluate("document.querySelector('#classement tbody .rank').innerText")
    assert first.strip() == "1"
    await browser.evaluate("document.querySelector('nav.pagination a[rel=next]').click()")
    await browser.poll(
        "location.search.includes('page=2') && document.readyState === 'complete'", "page 2"
    )
    ranks = await browser.evaluate(
        "[...document.querySelectorAll('#classement tbody .rank')].map((r) => r.innerText.trim())"
    )
    assert ranks == [str(n) for n in range(101, 201)]
    pages = await browser.evaluate(VISIBLE_TEXT % "nav.pagination")
    assert pages and "Page 2 sur 3" in pages
    assert await browser.evaluate(FITS)
    await screenshot(browser, f"petites-villes-page-2-{width}.png")


@pytest.mark.parametrize("width", WIDTHS)
async def test_a_comparison_of_three_territories(browser: DevTools, site: str, width: int):
    await browser.send("Page.enable")
    await set_width(browser, width)
    await open_page(browser, f"{site}/comparer?ids=dep-32,dep-75,{MEAILLES}")
    heads = await browser.evaluate(
        "[...document.querySelectorAll('#comparaison thead th.who')]"
        ".map((th) => th.innerText.replace(/\\s+/g, ' ').trim())"
    )
    assert len(heads) == 3
    assert [h.split(" ")[0] for h in heads] == ["Gers", "Paris", "Méailles"]
    for chart in ("comparaison-rangs", "comparaison-scores"):
        assert await browser.evaluate(f"!!document.querySelector('#{chart} svg, svg#{chart}')")
    assert await browser.evaluate(FITS), "the table scrolls inside its wrapper, not the page"
    await screenshot(browser, f"comparer-trois-{width}.png")


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_territory_page_shows_neighbours_percentile_and_the_gap(
    browser: DevTools, site: str, width: int
):
    await browser.send("Page.enable")
    await set_width(browser, width)
    await open_page(browser, f"{site}/territoires/{MEAILLES}")
    around = await browser.evaluate(VISIBLE_TEXT % "#autour")
    assert around and "Autour de Méailles" in around
    assert "des petites villes" in around and "%" in around
    rows = await browser.evaluate(
        "[...document.querySelector('#autour table.around').querySelectorAll('tbody tr')]"
        ".map((r) => r.className)"
    )
    assert rows.count("itself") == 1
    assert 1 < len(rows) <= 7
    passing = await browser.evaluate(VISIBLE_TEXT % "#depasser")
    assert passing and passing.startswith("Pour dépasser")
    assert "Activité :" in passing and "Audience :" in passing
    assert await browser.evaluate(FITS)
    await screenshot(browser, f"territoire-meailles-{width}.png")
