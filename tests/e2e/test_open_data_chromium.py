"""The open-data page in a real browser (headless Chromium, tests/e2e/browser.py), as a
journalist would use it: open /donnees on a phone (360 px) and a laptop (1280 px), find the
files of the latest edition, and download its CSV through the page: the file's rows equal the
entries of the edition's JSON file, value for value. A screenshot of each width is saved in
test-artifacts/.

The data: the story of tests/integration/test_api_story.py, then 520 petites villes ranked in
July and July published (tests/integration/test_open_data.py), in a real Redis."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from services.api.csv_export import EDITION_COLUMNS
from services.common.localstack import RedisServer
from services.common.settings import Settings
from tests.e2e.browser import VISIBLE_TEXT, DevTools, open_page, screenshot, set_width
from tests.integration.test_api_story import live_api
from tests.integration.test_open_data import JULY, JULY_TOWNS, assert_same_rows, seed

WIDTHS = (360, 1280)
# How wide the page is laid out (not compared with innerWidth: with mobile emulation Chromium
# widens the layout viewport to whatever overflows).
PAGE_WIDTH = "document.documentElement.scrollWidth"
OPEN_DETAILS = "document.querySelectorAll('details').forEach((d) => { d.open = true; })"


@pytest.fixture(scope="module")
def site(redis_server: RedisServer, tmp_path_factory) -> Iterator[str]:
    settings = Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/13",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("open-data-browser"),
    )
    asyncio.run(seed(settings.redis_url))
    with live_api(settings) as url:
        yield url


async def fetch_text(browser: DevTools, selector: str) -> dict[str, Any]:
    """Fetch the file a link of the page points to, from the page itself (same origin, as
    the browser would download it): its address, status, content type and text."""
    result = await browser.send(
        "Runtime.evaluate",
        expression=f"""
        (async () => {{
          const link = document.querySelector({json.dumps(selector)});
          const response = await fetch(link.href);
          return {{href: link.href, status: response.status,
                   type: response.headers.get('content-type'), text: await response.text()}};
        }})()
        """,
        awaitPromise=True,
        returnByValue=True,
    )
    assert "exceptionDetails" not in result, result
    return result["result"]["value"]


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_csv_of_an_edition_downloaded_from_the_data_page_equals_its_json(
    browser: DevTools, site: str, width: int
):
    await browser.send("Page.enable")
    await set_width(browser, width)
    await open_page(browser, f"{site}/donnees")
    assert await browser.evaluate("document.querySelector('h1').innerText") == "Données ouvertes"
    heading = await browser.evaluate(VISIBLE_TEXT % f"#titre-{JULY}")
    assert heading == "Palmarès de juillet 2021"
    row = f"#fichiers-{JULY}-petites-villes"
    cells = await browser.evaluate(VISIBLE_TEXT % row)
    assert cells and cells.startswith("Petites villes 520 CSV")
    for section in ("#dictionnaire", "#licences", "#citer", "#methode"):
        assert await browser.evaluate(VISIBLE_TEXT % section), section
    await browser.evaluate(OPEN_DETAILS)  # the older editions, folded, fit too
    assert await browser.evaluate(PAGE_WIDTH) <= width, "the page scrolls sideways"
    await screenshot(browser, f"donnees-{width}.png")

    csv_file = await fetch_text(browser, f"{row} a.csv")
    json_file = await fetch_text(browser, f"{row} a.json")
    assert csv_file["href"] == f"{site}/donnees/editions/{JULY}/petites-villes.csv"
    assert csv_file["status"] == 200 and csv_file["type"] == "text/csv; charset=utf-8"
    assert json_file["status"] == 200 and json_file["type"] == "application/json"
    # fetch() gives the text as sent (CRLF line ends kept).
    rows = list(csv.DictReader(io.StringIO(csv_file["text"], newline="")))
    entries = json.loads(json_file["text"])["items"]
    assert len(entries) == JULY_TOWNS
    assert_same_rows(rows, entries, EDITION_COLUMNS)
