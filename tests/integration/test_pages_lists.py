"""The French pages of whole lists and of comparisons, over a real Redis: the story of
test_api_story.py plus 250 ranked petites villes (120 in the Gers, 130 elsewhere) written by
the scorer's own code, so that a live list spans three pages of 100.

A list page shows 100 territories, their national ranks (or their ranks within a filter), and
a pagination nav whose links keep the filters; the comparison page shows territories side by
side with their histories as SVG charts that carry their own text alternatives."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from html import unescape

import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from services.api.app import create_app
from services.common.events import MetricsSnapshot, build_metrics_event
from services.common.localstack import RedisServer
from services.common.settings import Settings
from services.common.territories import Territory, load_registry
from services.common.view.keys import ViewKeys
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore
from tests.integration.test_api_story import OFFSETS, WATERMARK, posts, tell_story

CATEGORY = "petites-villes"
IN_GERS, ELSEWHERE = 120, 130
RANKED = IN_GERS + ELSEWHERE
HTML = {"Accept": "text/html"}


async def seed(redis_url: str) -> None:
    """The story, then 250 petites villes observed at the story's watermark (all ranked)."""
    await tell_story(redis_url)
    registry = load_registry()
    communes = sorted(registry.by_category(CATEGORY), key=lambda t: t.id)
    gers = [t for t in communes if t.departements == ("32",)][:IN_GERS]
    others = [t for t in communes if "76" not in t.regions][:ELSEWHERE]
    await rank_accounts(
        redis_url,
        gers + others,
        handle_prefix="pv",
        followers=lambda index: 400 + 37 * index,
        interactions=lambda index: 3 + index % 17,
    )


async def rank_accounts(
    redis_url: str,
    territories: list[Territory],
    *,
    handle_prefix: str,
    followers: Callable[[int], int],
    interactions: Callable[[int], int],
    follows: int = 300,
) -> None:
    """Give each territory an account `<prefix>.<code>` and one `ok` snapshot at the story's
    watermark (the i-th with `followers(i)` followers and posts of `interactions(i)`
    interactions), through the scorer's own code: all ranked."""
    redis = Redis.from_url(redis_url)
    try:
        updater = StandingsUpdater(ScorerStore(redis, ViewKeys(0)), load_registry())
        snapshots = []
        for index, territory in enumerate(territories):
            handle = f"{handle_prefix}.{territory.code}"
            await updater.apply_account(territory.id, handle, False, version=next(OFFSETS))
            event = build_metrics_event(
                handle=handle,
                observed_at=WATERMARK,
                status="ok",
                source="graph",
                followers=followers(index),
                follows=follows,
                media_count=100,
                recent_posts=posts(WATERMARK, interactions(index)),
            )
            snapshots.append(MetricsSnapshot.model_validate(event))
        await updater.apply_snapshots(snapshots)
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def lists_settings(redis_server: RedisServer, tmp_path_factory) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/15",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("pages-lists"),
    )


@pytest.fixture(scope="module")
def client(lists_settings: Settings) -> Iterator[TestClient]:
    asyncio.run(seed(lists_settings.redis_url))
    with TestClient(create_app(lists_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def whole(client: TestClient) -> list[dict]:
    """The whole live list as the JSON API gives it."""
    body = client.get(f"/api/v1/standings/{CATEGORY}", params={"limit": 500}).json()
    assert body["total"] == RANKED
    return body["items"]


def page(client: TestClient, url: str) -> str:
    response = client.get(url, headers=HTML)
    assert response.status_code == 200, response.text
    return response.text


def rows(html: str) -> list[str]:
    return re.findall(r'<tr id="t-([^"]+)"', html)


def ranks(html: str) -> list[int]:
    return [int(rank) for rank in re.findall(r'<td class="rank">(\d+)</td>', html)]


def nav(html: str) -> str:
    (found,) = re.findall(r'<nav class="pagination" aria-label="Pagination">.*?</nav>', html, re.S)
    return found


def link(html: str, rel: str) -> str | None:
    found = re.findall(rf'<a class="\w+" href="([^"]+)" rel="{rel}">', nav(html))
    assert len(found) <= 1
    return unescape(found[0]) if found else None


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- lists ------------------------------------------------------------------------------------


def test_page_one_shows_the_first_hundred_and_links_onwards(client, whole):
    html = page(client, f"/classements/{CATEGORY}")
    assert rows(html) == [item["id"] for item in whole[:100]]
    assert ranks(html) == list(range(1, 101))
    links = nav(html)
    assert "Page 1 sur 3" in text_of(links)
    assert re.search(r'<a href="/classements/petites-villes" aria-current="page">', links)
    assert link(html, "prev") is None and 'class="first"' not in links
    assert link(html, "next") == f"/classements/{CATEGORY}?page=2"
    assert f'<a class="last" href="/classements/{CATEGORY}?page=3">' in links
    assert "La suite est dans" not in html  # every territory is on the pages now


def test_the_last_page_shows_the_rest_and_no_next_link(client, whole):
    html = page(client, f"/classements/{CATEGORY}?page=3")
    assert rows(html) == [item["id"] for item in whole[200:]]
    assert ranks(html) == list(range(201, RANKED + 1))
    links = nav(html)
    assert "Page 3 sur 3" in text_of(links)
    assert f'<a href="/classements/{CATEGORY}?page=3" aria-current="page">' in links
    assert link(html, "next") is None and 'class="last"' not in links
    assert link(html, "prev") == f"/classements/{CATEGORY}?page=2"
    assert f'<a class="first" href="/classements/{CATEGORY}">' in links
    assert "(page 3 sur 3)" in html.split("</title>", 1)[0]


def test_following_the_next_links_visits_every_ranked_territory_once(client, whole):
    seen: list[str] = []
    url: str | None = f"/classements/{CATEGORY}"
    while url is not None:
        html = page(client, url)
        seen += rows(html)
        url = link(html, "next")
    assert seen == [item["id"] for item in whole]


@pytest.mark.parametrize("number", [4, 999, 10**30])
def test_a_page_beyond_the_last_is_the_french_404(client, number):
    response = client.get(f"/classements/{CATEGORY}?page={number}", headers=HTML)
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]
    assert "Page introuvable" in response.text
    assert "cette liste compte 3 pages (250 territoires)" in response.text
    api = client.get(f"/classements/{CATEGORY}?page={number}")
    assert api.status_code == 404 and api.json()["error"]["code"] == "page_out_of_range"


@pytest.mark.parametrize("number", ["0", "-1", "abc", "1.5", ""])
def test_a_page_that_is_not_a_positive_integer_is_an_invalid_parameter(client, number):
    response = client.get(f"/classements/{CATEGORY}?page={number}", headers=HTML)
    assert response.status_code == 422 and "Paramètre invalide" in response.text
    api = client.get(f"/classements/{CATEGORY}?page={number}")
    assert api.status_code == 422 and api.json()["error"]["code"] == "invalid_parameter"


@pytest.mark.parametrize(
    ("query", "place"), [("departement=32", "Gers"), ("region=76", "Occitanie")]
)
def test_filters_stay_in_the_links_and_ranks_stay_within_the_filter(client, query, place):
    listed = client.get(f"/api/v1/standings/{CATEGORY}?{query}&limit=500").json()["items"]
    assert len(listed) == IN_GERS  # the Gers communes, the only ones in Occitanie here
    first = page(client, f"/classements/{CATEGORY}?{query}")
    assert f"{IN_GERS} territoires classés en {place}" in text_of(first)
    assert link(first, "next") == f"/classements/{CATEGORY}?{query}&page=2"
    assert "Page 1 sur 2" in text_of(nav(first))
    second = page(client, f"/classements/{CATEGORY}?{query}&page=2")
    assert rows(second) == [item["id"] for item in listed[100:]]
    assert ranks(second) == list(range(101, IN_GERS + 1))  # ranks within the filter
    national = re.findall(r'<span class="national">(\d+)(?:er|e) au classement national', second)
    assert [int(rank) for rank in national] == [item["national_rank"] for item in listed[100:]]
    assert link(second, "prev") == f"/classements/{CATEGORY}?{query}"
    assert link(second, "next") is None
    response = client.get(f"/classements/{CATEGORY}?{query}&page=3", headers=HTML)
    assert response.status_code == 404


def test_a_list_of_one_page_has_no_pagination_links(client):
    html = page(client, "/classements/departements")
    assert len(rows(html)) == 7 and 'class="pagination"' not in html
    assert '<div id="pages">' in html  # present, empty: the live script swaps it
    assert client.get("/classements/departements?page=2", headers=HTML).status_code == 404


def test_an_edition_is_paginated_within_its_published_list(client):
    html = page(client, "/classements/departements?edition=2021-06")
    assert len(rows(html)) == 7 and 'class="pagination"' not in html
    beyond = client.get("/classements/departements?edition=2021-06&page=2", headers=HTML)
    assert beyond.status_code == 404 and "cette liste compte 1 page (7 territoires)" in beyond.text
    unknown = client.get("/classements/departements?edition=2020-01&page=2", headers=HTML)
    assert unknown.status_code == 404 and "Aucun palmarès" in unknown.text


def test_every_page_of_a_live_list_holds_what_the_live_script_swaps(client):
    """static/live.js refetches the page's own address (its page and filters) and swaps
    #classement, #as-of, #link-legend and #pages: each is there, once, on any page."""
    for url in (f"/classements/{CATEGORY}", f"/classements/{CATEGORY}?departement=32&page=2"):
        html = page(client, url)
        for element in ("classement", "as-of", "link-legend", "pages"):
            assert html.count(f'id="{element}"') == 1, (url, element)
        assert f'data-stream="/api/v1/rank-changes/stream?category={CATEGORY}&amp;after_seq=' in (
            html
        )
        assert '<script src="/static/live.js" defer></script>' in html
    script = client.get("/static/live.js").text
    assert "fetch(window.location.href" in script and 'getElementById("pages")' in script


# --- the comparison page ----------------------------------------------------------------------


def columns(html: str) -> list[str]:
    table = html.split('<table id="comparaison"', 1)[1].split("</thead>", 1)[0]
    return re.findall(r'<a class="name" href="/territoires/([^"]+)">', table)


def test_the_comparison_page_shows_a_column_per_territory_with_remove_links(client):
    html = page(client, "/comparer?ids=dep-32,dep-75,com-32013")
    assert columns(html) == ["dep-32", "dep-75", "com-32013"]
    table = html.split('<table id="comparaison"', 1)[1].split("</table>", 1)[0]
    text = text_of(table)
    assert "Gers Départements 1er sur 7" in text
    assert "Paris Départements 3e sur 7" in text
    assert "Auch Villes moyennes non classé (aucun relevé)" in text
    for label in ("Score", "Engagement", "Portée", "Activité", "Audience", "Compte Instagram"):
        assert f'<th scope="row">{label}' in table
    assert "16\u202f000" in table and "abonnés" in text and "points" in text  # French figures
    assert "Vu par l’API Instagram au dernier relevé" in text
    removals = [unescape(h) for h in re.findall(r'<a class="remove" href="([^"]+)">', table)]
    assert removals == [
        "/comparer?ids=dep-75,com-32013",
        "/comparer?ids=dep-32,com-32013",
        "/comparer?ids=dep-32,dep-75",
    ]
    assert "Retirer Gers de la comparaison" in text
    assert page(client, "/comparer?ids=dep-32").count('class="remove" href="/comparer"') == 1


def test_the_comparison_page_overlays_the_histories_as_described_svg_charts(client):
    html = page(client, "/comparer?ids=dep-32,dep-75")
    for chart_id, what in (("comparaison-rangs", "Rang"), ("comparaison-scores", "Score")):
        (svg,) = re.findall(rf'<svg id="{chart_id}" .*?</svg>', html, re.S)
        assert 'role="img"' in svg
        assert f'aria-labelledby="{chart_id}-title {chart_id}-desc"' in svg
        assert f'<title id="{chart_id}-title">' in svg
        (desc,) = re.findall(rf'<desc id="{chart_id}-desc">(.*?)</desc>', svg)
        assert desc.startswith(what) and "Gers : mai 2021" in desc and "Paris : mai 2021" in desc
        assert svg.count('class="chart-series series-') == 2  # one line each
        assert svg.count("<polyline") == 2
        legend = html.split(f'<ul class="chart-legend" id="{chart_id}-legend">', 1)[1]
        assert text_of(legend.split("</ul>", 1)[0]).split() == ["Gers", "Paris"]
    ranks_chart = html.split('<svg id="comparaison-rangs"', 1)[1].split("</svg>", 1)[0]
    assert "Gers : mai 2021 1er, juin 2021 1er" in ranks_chart
    assert "Paris : mai 2021 2e, juin 2021 2e" in ranks_chart
    assert "<title>Gers, juin 2021 : 1er</title>" in ranks_chart
    # distinct markers, not only distinct colours
    assert '<circle class="chart-marker"' in ranks_chart and '<rect class="chart-marker"' in (
        ranks_chart
    )
    figures = text_of(html.split('<table id="comparaison-historique"', 1)[1].split("</table>")[0])
    assert "juin 2021 1er sur 7" in figures and "mai 2021" in figures


def test_an_empty_comparison_explains_and_offers_the_add_form(client):
    html = page(client, "/comparer")
    assert "Choisissez jusqu’à 6 territoires" in text_of(html)
    assert 'id="comparaison"' not in html and "<svg" not in html
    form = html.split('<form class="compare-add" method="get" action="/comparer">', 1)[1]
    form = form.split("</form>", 1)[0]
    assert '<input id="ajout" name="ajout" type="text"' in form
    assert 'type="hidden"' not in form


def test_the_add_form_keeps_the_territories_already_compared(client):
    html = page(client, "/comparer?ids=dep-32,reg-76")
    assert '<input type="hidden" name="ids" value="dep-32,reg-76">' in html
    # `ids` may repeat (comma lists, spaces, duplicates)
    added = page(client, "/comparer?ids=dep-32,reg-76&ids=+dep-75+&ids=dep-32")
    assert columns(added) == ["dep-32", "reg-76", "dep-75"]


@pytest.mark.parametrize(
    ("typed", "added"),
    [
        ("dep-75", "dep-75"),
        ("Méailles", "com-04115"),
        ("meailles", "com-04115"),
        ("04115", "com-04115"),
    ],
)
def test_the_add_form_takes_a_name_a_code_or_an_id_and_redirects_to_the_list(client, typed, added):
    # what the form sends: the list kept, then what the reader typed
    response = client.get(
        "/comparer", params={"ids": "dep-32,reg-76", "ajout": typed}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/comparer?ids=dep-32%2Creg-76%2C{added}"
    assert columns(page(client, response.headers["location"])) == ["dep-32", "reg-76", added]


def test_the_add_form_says_when_nothing_matches(client):
    html = page(client, "/comparer?ids=dep-32&ajout=zzqqxx")
    assert "Aucun territoire ne correspond à « zzqqxx »" in html
    assert columns(html) == ["dep-32"]
    assert 'value="zzqqxx" aria-invalid="true"' in html


def test_six_territories_fill_the_comparison(client):
    html = page(client, "/comparer?ids=dep-32,dep-75,dep-38,dep-52,dep-31,dep-09")
    assert len(columns(html)) == 6
    assert "compare-add" not in html and "le maximum" in html
    seven = client.get(
        "/comparer?ids=dep-32,dep-75,dep-38,dep-52,dep-31,dep-09,dep-01", headers=HTML
    )
    assert seven.status_code == 422 and "Paramètre invalide" in seven.text


def test_an_unknown_territory_on_the_comparison_page_is_the_french_404(client):
    response = client.get("/comparer?ids=dep-32,dep-999", headers=HTML)
    assert response.status_code == 404 and "Page introuvable" in response.text
    assert "dep-999" in response.text


@pytest.mark.parametrize("url", [f"/classements/{CATEGORY}?page=2", "/comparer?ids=dep-32,reg-76"])
def test_the_pages_carry_no_inline_style_or_script(client, url):
    response = client.get(url, headers=HTML)
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "style=" not in response.text and "<style" not in response.text
    assert re.findall(r"<script(?![^>]*\bsrc=)", response.text) == []
