"""Territory search through the real app over a real Redis (the story of test_api_story.py):
`GET /api/v1/search` (shape, order, handles from the account mapping, errors), the page
`/recherche` without JavaScript, and the search form in the header of every page."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from services.api import schemas
from services.api.app import create_app
from services.api.read.search import TerritorySearch
from services.common.contracts import CATEGORIES_BY_ID
from services.common.localstack import RedisServer
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.accounts import AccountMapping
from services.common.view.keys import ViewKeys
from services.common.view.values import AccountLink
from tests.integration.test_api_story import ACCOUNTS, Story, tell_story

MEAILLES = "com-04115"
SAINT_DENIS = ["com-97411", "com-93066"]  # La Réunion, then Seine-Saint-Denis (population)
ITEM_FIELDS = {
    "id",
    "name",
    "category",
    "category_label",
    "kind",
    "code",
    "population",
    "handle",
    "departements",
    "regions",
    "url",
}


@pytest.fixture(scope="module")
def search_settings(redis_server: RedisServer, tmp_path_factory) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/4",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("api-search"),
    )


@pytest.fixture(scope="module")
def story(search_settings: Settings) -> Story:
    return asyncio.run(tell_story(search_settings.redis_url))


@pytest.fixture(scope="module")
def client(search_settings: Settings, story: Story) -> Iterator[TestClient]:
    with TestClient(create_app(search_settings)) as test_client:
        yield test_client


def ids(body: dict) -> list[str]:
    return [item["id"] for item in body["items"]]


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def place(kind: str, code: str) -> dict[str, str]:
    return {"code": code, "name": load_registry()[f"{kind}-{code}"].name}


# --- the JSON API -----------------------------------------------------------------------------


def test_st_denis_lists_both_saint_denis_first_with_their_places(client):
    response = client.get("/api/v1/search", params={"q": "st denis"})
    assert response.status_code == 200
    body = response.json()
    schemas.SearchResults.model_validate(body)
    assert ids(body)[:2] == SAINT_DENIS and len(body["items"]) == 10
    reunion, seine = body["items"][:2]
    assert set(reunion) == ITEM_FIELDS
    registry = load_registry()
    for item, tid in zip((reunion, seine), SAINT_DENIS, strict=True):
        territory = registry[tid]
        assert item == {
            "id": tid,
            "name": "Saint-Denis",
            "category": "grandes-villes",
            "category_label": CATEGORIES_BY_ID["grandes-villes"].label,
            "kind": "com",
            "code": territory.code,
            "population": territory.population,
            "handle": None,
            "departements": [place("dep", code) for code in territory.departements],
            "regions": [place("reg", code) for code in territory.regions],
            "url": f"/territoires/{tid}",
        }
    assert reunion["departements"][0]["name"] != seine["departements"][0]["name"]
    populations = [item["population"] for item in body["items"][:4]]
    assert populations == sorted(populations, reverse=True)


def test_a_category_and_a_limit_narrow_the_results(client):
    body = client.get("/api/v1/search", params={"q": "mea", "category": "petites-villes"}).json()
    assert MEAILLES in ids(body)
    assert {item["category"] for item in body["items"]} == {"petites-villes"}
    meailles = next(item for item in body["items"] if item["id"] == MEAILLES)
    assert meailles["departements"] == [place("dep", "04")]
    assert meailles["regions"] == [place("reg", "93")]
    limited = client.get("/api/v1/search", params={"q": "saint", "limit": 3}).json()
    assert len(limited["items"]) == 3
    assert client.get("/api/v1/search", params={"q": "zzzzqx"}).json() == {"items": []}


def test_codes_and_sirens_find_their_territory_first(client):
    assert ids(client.get("/api/v1/search", params={"q": "04115"}).json()) == [MEAILLES]
    codes = [
        item["code"] for item in client.get("/api/v1/search", params={"q": "0411"}).json()["items"]
    ]
    assert codes == sorted(codes) and all(code.startswith("0411") for code in codes)
    siren = client.get("/api/v1/search", params={"q": "200046977"}).json()
    assert ids(siren) == ["epci-200046977"] and siren["items"][0]["kind"] == "epci"


def test_handles_come_from_the_account_mapping_in_redis(client, search_settings):
    gers = client.get("/api/v1/search", params={"q": "@gersledep"}).json()
    assert ids(gers) == ["dep-32"] and gers["items"][0]["handle"] == ACCOUNTS["dep-32"]
    by_name = client.get("/api/v1/search", params={"q": "gers", "category": "departements"})
    assert by_name.json()["items"][0]["handle"] == ACCOUNTS["dep-32"]
    assert client.get("/api/v1/search", params={"q": "@meailles"}).json() == {"items": []}

    async def add_account() -> None:
        redis = Redis.from_url(search_settings.redis_url)
        try:
            mapping = AccountMapping(redis, ViewKeys(0))
            await mapping.set_accounts({MEAILLES: (AccountLink("meailles.village", False), 10**6)})
        finally:
            await redis.aclose()

    asyncio.run(add_account())
    found = client.get("/api/v1/search", params={"q": "@Meailles"}).json()
    assert ids(found) == [MEAILLES] and found["items"][0]["handle"] == "meailles.village"
    assert ids(client.get("/api/v1/search", params={"q": "@gersledep"}).json()) == ["dep-32"]


def test_the_handles_are_reindexed_only_when_the_mapping_object_changes():
    search = TerritorySearch(load_registry())
    mapping = {"dep-32": AccountLink("gersledepartement", False)}
    first = search.index(mapping)
    assert search.index(mapping) is first
    changed = search.index({**mapping, MEAILLES: AccountLink("meailles.village", True)})
    assert changed is not first
    assert [hit.territory.id for hit in changed.search("@meai")] == [MEAILLES]
    assert first.search("@meai") == []


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "a" * 101},
        {"q": "paris", "limit": 0},
        {"q": "paris", "limit": 51},
        {"q": "paris", "limit": "dix"},
    ],
)
def test_a_blank_or_too_long_query_or_a_bad_limit_is_422(client, params):
    response = client.get("/api/v1/search", params=params)
    assert response.status_code == 422, params
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter" and error["message"]
    schemas.ErrorBody.model_validate(response.json())


def test_an_unknown_category_is_404(client):
    response = client.get("/api/v1/search", params={"q": "paris", "category": "cantons"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_category"


def test_the_query_is_stripped_and_may_be_100_characters(client):
    padded = client.get("/api/v1/search", params={"q": "  meailles  "}).json()
    assert ids(padded)[0] == MEAILLES
    assert client.get("/api/v1/search", params={"q": "a" * 100}).status_code == 200


# --- the pages --------------------------------------------------------------------------------


def test_search_page_without_javascript_lists_meailles_with_its_departement(client):
    response = client.get("/recherche", params={"q": "meailles"})
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    page = response.text
    assert f'<a href="/territoires/{MEAILLES}">Méailles</a>' in page
    registry = load_registry()
    entry = text_of(page.split(f'href="/territoires/{MEAILLES}"', 1)[1].split("</li>", 1)[0])
    assert CATEGORIES_BY_ID["petites-villes"].label in entry
    assert f"{registry['dep-04'].name} (04)" in entry and registry["reg-93"].name in entry
    assert 'value="meailles"' in page
    assert "1 résultat pour « meailles »" in text_of(page)


def test_search_page_says_when_nothing_matches_and_keeps_the_category(client):
    page = client.get("/recherche", params={"q": "zzzzqx"}).text
    assert "Aucun territoire ne correspond à « zzzzqx »" in text_of(page)
    filtered = client.get("/recherche", params={"q": "mea", "category": "petites-villes"}).text
    assert f'href="/territoires/{MEAILLES}"' in filtered
    assert '<option value="petites-villes" selected>' in filtered
    everything = client.get("/recherche", params={"q": "st denis", "category": ""}).text
    hrefs = re.findall(r'<li>\s*<a href="/territoires/([^"]+)"', everything)
    assert hrefs[:2] == SAINT_DENIS
    unknown = client.get("/recherche?q=paris&category=cantons", headers={"Accept": "text/html"})
    assert unknown.status_code == 404 and "Page introuvable" in unknown.text


def test_search_page_without_a_query_shows_only_the_form(client):
    for params in ({}, {"q": ""}, {"q": "   "}):
        response = client.get("/recherche", params=params)
        assert response.status_code == 200
        text = text_of(response.text)
        assert 'id="recherche-page-q"' in response.text and "Rechercher un territoire" in text
        assert "résultat" not in text and "Aucun territoire ne correspond" not in text
    too_long = client.get("/recherche", params={"q": "a" * 101})
    assert too_long.status_code == 422 and "trop longue" in too_long.text


HEADER_FORM = re.compile(
    r'<form class="site-search" role="search"[^>]* action="/recherche" method="get">(.*?)</form>',
    re.DOTALL,
)


@pytest.mark.parametrize("path", ["/", "/territoires/dep-32", f"/territoires/{MEAILLES}"])
def test_every_page_has_the_search_form_in_its_header(client, path):
    response = client.get(path)
    assert response.status_code == 200
    page = response.text
    header = page.split('<header class="site">', 1)[1].split("</header>", 1)[0]
    (form,) = HEADER_FORM.findall(header)
    assert '<label class="sr" for="recherche-q">Rechercher un territoire</label>' in form
    assert re.search(r'<input type="search" id="recherche-q" name="q"', form)
    assert '<button type="submit">Rechercher</button>' in form
    assert '<script src="/static/search.js" defer></script>' in page
    # The policy runs only our own files: no inline script, no style attribute.
    assert not re.findall(r"<script>", page) and " style=" not in page


def test_the_suggestions_script_is_served(client):
    response = client.get("/static/search.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    for hook in ('"recherche-q"', '"recherche-suggestions"', '"suggestion"', '"data-url"'):
        assert hook in response.text
    assert "/api/v1/search?q=" in response.text
