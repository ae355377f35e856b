"""The method in the open in a real browser (headless Chromium, tests/e2e/browser.py), at 360 px
and 1280 px: a reader opens /methodologie, reads the document's contents, types an account's
five figures into the calculator, submits the form (no script involved) and reads the score;
a mistyped figure comes back with its message beside the field. /couverture shows its tables,
the région detail of a category opens without JavaScript. No page is wider than the window;
each is saved as a screenshot in test-artifacts/.

The data: tests/integration/test_api_method.py's seed (the story, 250 petites villes, three
communautés de communes, two grandes villes with an account but no snapshot) in a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from services.api.formatting import fr_decimal
from services.common.calculator import score_totals
from services.common.localstack import RedisServer
from services.common.settings import Settings
from tests.e2e.browser import VISIBLE_TEXT, DevTools, open_page, press, screenshot, set_width
from tests.e2e.browser import type_text as type_into
from tests.integration.test_api_method import seed
from tests.integration.test_api_story import live_api

WIDTHS = (360, 1280)
# True when nothing is wider than the window (no sideways scrolling of the page).
FITS = "document.documentElement.scrollWidth <= window.innerWidth"
# A reader's figures, typed as a French reader writes them.
TYPED = {
    "abonnes": "2 345",
    "abonnements": "120",
    "publications": "12",
    "interactions": "1 500",
    "population": "48 000",
}
EXPECTED = score_totals(followers=2345, follows=120, posts=12, interactions=1500, population=48000)


@pytest.fixture(scope="module")
def site(redis_server: RedisServer, tmp_path_factory) -> Iterator[str]:
    settings = Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/1",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("method-chromium"),
    )
    asyncio.run(seed(settings.redis_url))
    with live_api(settings) as url:
        yield url


async def fill(browser: DevTools, name: str, text: str) -> None:
    """Empty a field of the calculator and type into it, key by key."""
    await browser.evaluate(
        f"(() => {{ const f = document.getElementById('calc-{name}');"
        " f.value = ''; f.focus(); })()"
    )
    await type_into(browser, text)


async def submitted(browser: DevTools) -> None:
    await browser.poll(
        "location.search.includes('abonnes=') && document.readyState === 'complete'",
        "the calculator's answer",
    )


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_methodology_page_and_its_calculator(browser: DevTools, site: str, width: int):
    await browser.send("Page.enable")
    await set_width(browser, width)
    await open_page(browser, f"{site}/methodologie")
    assert await browser.evaluate("document.querySelector('h1').innerText") == (
        "Méthodologie du classement — version 1"
    )
    contents = await browser.evaluate(VISIBLE_TEXT % "nav.toc")
    assert contents and "5. Exemple détaillé" in contents and "Calculateur" in contents
    example = await browser.evaluate(VISIBLE_TEXT % "#calc-score")
    assert example == "63,0373"
    assert await browser.evaluate(FITS)
    await screenshot(browser, f"methodologie-{width}.png")

    for name, text in TYPED.items():
        await fill(browser, name, text)
    await press(browser, "Enter")  # submits the form, as a reader would
    await submitted(browser)
    assert await browser.evaluate("location.hash") == "#calculateur"
    assert await browser.evaluate(VISIBLE_TEXT % "#calc-score") == fr_decimal(EXPECTED.score, 4)
    shown = await browser.evaluate(
        "[...document.querySelectorAll('.calc-result td.points')].map((td) => td.innerText)"
    )
    indicators = EXPECTED.indicators_dict()
    assert shown == [
        fr_decimal(indicators[name]["points"], 4)
        for name in ("engagement", "reach", "activity", "audience", "ratio")
    ]
    assert await browser.evaluate("document.getElementById('calc-abonnes').value") == "2 345"
    assert await browser.evaluate(FITS)
    await screenshot(browser, f"methodologie-calcul-{width}.png")


async def test_a_mistyped_figure_is_answered_beside_its_field(browser: DevTools, site: str):
    await browser.send("Page.enable")
    await set_width(browser, 360)
    await open_page(browser, f"{site}/methodologie")
    await fill(browser, "publications", "-3")
    await browser.evaluate("document.querySelector('.calc-form button[type=submit]').click()")
    await submitted(browser)
    message = await browser.evaluate(VISIBLE_TEXT % "#calc-publications-erreur")
    assert message == "Indiquez un nombre positif ou nul."
    assert (
        await browser.evaluate(
            "document.getElementById('calc-publications').getAttribute('aria-invalid')"
        )
        == "true"
    )
    alert = await browser.evaluate(VISIBLE_TEXT % "#calc-erreurs")
    assert alert and "un champ est à corriger" in alert
    assert await browser.evaluate("document.getElementById('calc-score')") is None
    assert await browser.evaluate(FITS)


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_coverage_page(browser: DevTools, site: str, width: int):
    await browser.send("Page.enable")
    await set_width(browser, width)
    await open_page(browser, f"{site}/couverture")
    assert await browser.evaluate("document.querySelector('h1').innerText") == (
        "Couverture de l’observatoire"
    )
    departements = await browser.evaluate(VISIBLE_TEXT % "#c-departements")
    assert departements and departements.startswith("Départements 101 7")
    sentences = await browser.evaluate(VISIBLE_TEXT % "ul.sentences")
    assert sentences and "7 départements mesurés sur 101" in sentences
    # The région detail opens without a script (a <details>).
    await browser.evaluate("document.querySelector('#d-petites-villes summary').click()")
    detail = await browser.poll(VISIBLE_TEXT % "#d-petites-villes table", "the région detail")
    assert "Occitanie" in detail
    assert await browser.evaluate(FITS)
    await screenshot(browser, f"couverture-{width}.png")
