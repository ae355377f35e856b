"""The badge in a real browser (headless Chromium, tests/e2e/browser.py): on the territory's
page at 360 px (the image loads and has a size, the snippet to copy wraps rather than widen
the page; screenshot test-artifacts/badge-360.png), and pasted in another site's page as the
snippet says (an <img> inside a link, from another origin: no policy of ours blocks it).

The data: tests/integration/test_feeds_badge.py's story (two published editions, later rank
changes), written by the scorer's and the publisher's own code into a real Redis."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.common.localstack import RedisServer
from services.common.settings import Settings
from tests.e2e.browser import ARTIFACTS, DevTools, open_page, set_width
from tests.integration.test_api_story import live_api
from tests.integration.test_feeds_badge import _seed

# The badge image once loaded: its intrinsic and laid-out widths (null until loaded).
BADGE = """
(() => {
  const img = document.querySelector('%s');
  if (!img || !img.complete || img.naturalWidth === 0) return null;
  return {natural: img.naturalWidth, shown: img.getBoundingClientRect().width,
          height: img.getBoundingClientRect().height, alt: img.alt};
})()
"""
FITS = "document.documentElement.scrollWidth <= window.innerWidth"


async def section_screenshot(browser: DevTools, selector: str, name: str) -> None:
    """Save the part of the page `selector` names (with a margin) in test-artifacts/."""
    box = await browser.evaluate(
        f"(() => {{ const r = document.querySelector('{selector}').getBoundingClientRect(); "
        "return {x: 0, y: r.top + scrollY - 8, width: innerWidth, height: r.height + 16}; })()"
    )
    shot = await browser.send(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={**box, "scale": 2},
    )
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000


@contextlib.contextmanager
def other_site(page: bytes) -> Iterator[str]:
    """A site of another origin serving one page; yields its address."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site(redis_server: RedisServer, tmp_path_factory) -> Iterator[str]:
    settings = Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/12",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("badge"),
    )
    asyncio.run(_seed(settings.redis_url))
    with live_api(settings) as url:
        yield url


async def test_the_badge_renders_on_the_territory_page_at_360_px(browser: DevTools, site: str):
    await browser.send("Page.enable")
    await set_width(browser, 360)
    await open_page(browser, f"{site}/territoires/dep-32")
    badge = await browser.poll(BADGE % "#badge img", "the badge image to load")
    assert badge["natural"] > 100 and 0 < badge["shown"] <= 360 - 2 * 16
    assert badge["height"] > 0 and badge["alt"].startswith("Gers")
    heading = await browser.evaluate("document.getElementById('badge-titre').innerText")
    assert heading == "Afficher ce classement sur votre site"
    snippet = await browser.evaluate("document.querySelector('#badge pre code').textContent")
    assert snippet.startswith(f'<a href="{site}/territoires/dep-32"><img src="{site}/badges/')
    assert await browser.evaluate(FITS), "the snippet widens the page"
    await section_screenshot(browser, "#badge", "badge-360.png")


async def test_the_snippet_shows_the_badge_on_another_site(browser: DevTools, site: str):
    await browser.send("Page.enable")
    await open_page(browser, f"{site}/territoires/dep-32")
    snippet = await browser.evaluate("document.querySelector('#badge pre code').textContent")
    # Another origin (another port) serving a page with the snippet pasted as it is.
    page = f"<!doctype html><html lang='fr'><title>Mairie</title><body>{snippet}</body></html>"
    with other_site(page.encode()) as other:
        await open_page(browser, other)
        badge = await browser.poll(BADGE % "a > img", "the badge on another site")
    assert badge["natural"] > 100 and badge["height"] == 28
    link = await browser.evaluate("document.querySelector('a').href")
    assert link == f"{site}/territoires/dep-32"
