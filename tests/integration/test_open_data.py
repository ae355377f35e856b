"""Open data over a real Redis: CSV beside JSON on the standings and edition endpoints (the same
rows and values), the whole-edition files under /donnees/editions/, the /donnees page, and CORS
open on the public reads only.

The data: the story of test_api_story.py (May and June published, seven départements), then
520 petites villes observed in July and July published, written by the scorer's and the
publisher's own code, so that a July file spans two pages of the API (500 + 20)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.api.app import create_app
from services.api.csv_export import EDITION_COLUMNS, STANDINGS_COLUMNS, Column
from services.common.commands.sender import Delivered
from services.common.events import Command, build_command
from services.common.localstack import RedisServer
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from services.publisher.core import Publisher
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore
from tests.integration.test_api_story import DEAD, FOLLOWERS, Story, apply, snapshot, tell_story
from tests.integration.test_pages_lists import rank_accounts
from tests.signing import COMMAND_KEY, COMMAND_KEYS

JULY_TOWNS = 520
JULY = "2021-07"
# July ends at 2021-07-31T22:00:00Z (Paris); publishable 24 h later.
WATERMARK = "2021-08-02T00:00:00Z"
CSV_TYPE = "text/csv; charset=utf-8"
HTML = {"Accept": "text/html"}


async def publish(redis_url: str, month: str, *, watermark_at: str) -> None:
    """Move time to `watermark_at` (the live départements observed again then, but Ariège's
    dead account), then publish `month` through the publisher's own command executor."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        registry = load_registry()
        story = Story()
        story.updater = StandingsUpdater(ScorerStore(redis, ViewKeys(0)), registry)

        async def sent(topic: str, key: bytes, value: bytes) -> Delivered:
            return Delivered(0, 0)

        story.publisher = Publisher(
            redis, ViewKeys(0), registry, sent, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await story.publisher.load()
        again = FOLLOWERS["2021-06-28T06:00:00Z"]
        await apply(
            story,
            [snapshot(tid, watermark_at, count) for tid, count in again.items() if tid != DEAD],
        )
        command = build_command(
            command="publish_edition",
            args={"edition": month},
            requested_by="cli",
            requested_at=watermark_at,
            key=COMMAND_KEY,
        )
        result = await story.publisher.commands.execute(Command.model_validate(command))
        assert result is not None and result["status"] == "done", result
    finally:
        await redis.aclose()


async def seed(redis_url: str) -> None:
    """The story, then 520 petites villes ranked in July, and July published."""
    await tell_story(redis_url)
    towns = sorted(load_registry().by_category("petites-villes"), key=lambda t: t.id)
    await rank_accounts(
        redis_url,
        towns[:JULY_TOWNS],
        handle_prefix="od",
        followers=lambda index: 300 + 13 * index,
        interactions=lambda index: 2 + index % 23,
    )
    await publish(redis_url, JULY, watermark_at=WATERMARK)


@pytest.fixture(scope="module")
def open_settings(redis_server: RedisServer, tmp_path_factory) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/7",
        rate_limit_enabled=False,
        operator_token=SecretStr("open-data-operator-token"),
        run_dir=tmp_path_factory.mktemp("open-data"),
    )


@pytest.fixture(scope="module")
def client(open_settings: Settings) -> Iterator[TestClient]:
    asyncio.run(seed(open_settings.redis_url))
    with TestClient(create_app(open_settings)) as test_client:
        yield test_client


def csv_rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CSV_TYPE
    text = response.content.decode("utf-8")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def json_value(item: dict[str, Any], column: Column) -> Any:
    value: Any = item
    for key in column.path:
        value = None if value is None else value.get(key)
    return value


def assert_same_value(text: str, value: Any, where: str) -> None:
    """A CSV cell read back by the JSON value's type equals that value."""
    if value is None:
        assert text == "", where
    elif isinstance(value, bool):
        assert text == ("true" if value else "false"), where
    elif isinstance(value, int):
        assert int(text) == value, where
    elif isinstance(value, float):
        assert float(text) == value, where
    else:
        assert text == value, where


def assert_same_rows(
    rows: list[dict[str, str]], items: list[dict[str, Any]], columns: tuple[Column, ...]
) -> None:
    """One CSV row per JSON item, in order, every column equal to the item's value."""
    assert len(rows) == len(items) and items
    assert list(rows[0]) == [c.name for c in columns]
    for row, item in zip(rows, items, strict=True):
        for column in columns:
            assert_same_value(row[column.name], json_value(item, column), f"{item['id']} {column}")


# --- CSV beside JSON -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{}, {"limit": "3", "offset": "2"}, {"region": "76"}],
    ids=["whole", "a-page", "occitanie"],
)
def test_live_standings_as_csv_have_exactly_the_json_rows(client, params):
    url = "/api/v1/standings/departements"
    body = client.get(url, params=params).json()
    rows = csv_rows(client.get(url, params=params | {"format": "csv"}))
    assert_same_rows(rows, body["items"], STANDINGS_COLUMNS)


def test_a_page_of_500_petites_villes_as_csv_equals_its_json(client):
    url = "/api/v1/standings/petites-villes"
    params = {"limit": "500", "offset": "10"}
    body = client.get(url, params=params).json()
    assert len(body["items"]) == 500
    assert_same_rows(
        csv_rows(client.get(url, params=params | {"format": "csv"})),
        body["items"],
        STANDINGS_COLUMNS,
    )


@pytest.mark.parametrize("month", ["2021-06", JULY, "2021-08"])
def test_edition_standings_as_csv_have_exactly_the_json_rows(client, month):
    category = "petites-villes" if month == JULY else "departements"
    url = f"/api/v1/editions/{month}/{category}"
    body = client.get(url, params={"limit": "500"}).json()
    assert body["status"] == ("provisional" if month == "2021-08" else "published")
    rows = csv_rows(client.get(url, params={"limit": "500", "format": "csv"}))
    assert_same_rows(rows, body["items"], EDITION_COLUMNS)
    if month == "2021-06":
        assert rows[0]["streak"] == "2" and rows[0]["id"] == "dep-32"


def test_accept_text_csv_gets_the_csv_and_format_json_overrides_it(client):
    url = "/api/v1/standings/departements"
    by_query = client.get(url, params={"format": "csv"})
    by_accept = client.get(url, headers={"Accept": "text/csv"})
    assert by_accept.headers["content-type"] == CSV_TYPE
    assert by_accept.content == by_query.content
    forced = client.get(url, params={"format": "json"}, headers={"Accept": "text/csv"})
    assert forced.headers["content-type"] == "application/json"
    browser = client.get(url, headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.headers["content-type"] == "application/json"


def test_csv_headers_name_the_file_and_each_representation_has_its_etag(client):
    url = "/api/v1/standings/departements"
    as_json = client.get(url)
    as_csv = client.get(url, params={"format": "csv"})
    assert as_csv.headers["content-disposition"] == (
        'attachment; filename="observatoire-departements-direct-2021-08-02T000000Z.csv"'
    )
    for response in (as_json, as_csv):
        assert response.headers["vary"] == "Accept"
        assert response.headers["cache-control"] == "no-cache"
    assert as_json.headers["etag"] != as_csv.headers["etag"]
    again = client.get(
        url, params={"format": "csv"}, headers={"If-None-Match": as_csv.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == as_csv.headers["etag"]
    # The JSON's ETag does not validate the CSV, nor the reverse.
    crossed = client.get(
        url, params={"format": "csv"}, headers={"If-None-Match": as_json.headers["etag"]}
    )
    assert crossed.status_code == 200 and crossed.headers["content-type"] == CSV_TYPE
    edition = client.get("/api/v1/editions/2021-06/departements", params={"format": "csv"})
    assert edition.headers["cache-control"] == "public, max-age=300"
    assert (
        'filename="observatoire-departements-2021-06.csv"'
        in (edition.headers["content-disposition"])
    )
    filtered = client.get(url, params={"format": "csv", "departement": "32"})
    assert "-departement-32.csv" in filtered.headers["content-disposition"]


@pytest.mark.parametrize(
    "url", ["/api/v1/standings/departements", "/api/v1/editions/2021-06/departements"]
)
def test_an_unknown_format_is_a_422_json_error(client, url):
    response = client.get(url, params={"format": "xml"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "invalid_parameter"
    assert "json or csv" in response.json()["error"]["message"]


# --- the edition files -----------------------------------------------------------------------


def test_the_edition_files_hold_every_entry_the_api_pages_give(client):
    paged = [
        item
        for offset in (0, 500)
        for item in client.get(
            f"/api/v1/editions/{JULY}/petites-villes", params={"limit": 500, "offset": offset}
        ).json()["items"]
    ]
    assert len(paged) == JULY_TOWNS
    as_json = client.get(f"/donnees/editions/{JULY}/petites-villes.json")
    assert as_json.status_code == 200 and as_json.headers["content-type"] == "application/json"
    whole = as_json.json()
    assert whole["total"] == JULY_TOWNS and whole["edition"] == JULY
    assert whole["status"] == "published" and whole["methodology_version"] == 1
    assert whole["licence_url"] == "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"
    assert whole["items"] == paged
    assert [item["rank"] for item in paged] == list(range(1, JULY_TOWNS + 1))
    rows = csv_rows(client.get(f"/donnees/editions/{JULY}/petites-villes.csv"))
    assert_same_rows(rows, paged, EDITION_COLUMNS)
    assert any("'" in row["name"] or "-" in row["name"] for row in rows)


def test_the_edition_files_are_cacheable_and_rendered_once(client):
    url = f"/donnees/editions/{JULY}/petites-villes.csv"
    first = client.get(url)
    files = client.app.state.edition_files
    renders = files.renders
    second = client.get(url)
    assert files.renders == renders and second.content == first.content
    assert first.headers["cache-control"] == "public, max-age=86400"
    assert first.headers["content-disposition"] == (
        f'attachment; filename="observatoire-petites-villes-{JULY}.csv"'
    )
    etag = first.headers["etag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag
    as_json = client.get(url.replace(".csv", ".json"))
    assert as_json.headers["etag"] != etag
    assert "default-src 'none'" in first.headers["content-security-policy"]


def test_a_published_category_without_ranked_territories_is_a_header_only_file(client):
    response = client.get("/donnees/editions/2021-05/regions.csv")
    assert response.status_code == 200
    assert response.text == ",".join(c.name for c in EDITION_COLUMNS) + "\r\n"
    assert client.get("/donnees/editions/2021-05/regions.json").json()["items"] == []


@pytest.mark.parametrize(
    "url,status,code",
    [
        ("/donnees/editions/2021-08/departements.csv", 404, "unknown_edition"),  # provisional
        ("/donnees/editions/2030-01/departements.json", 404, "unknown_edition"),
        ("/donnees/editions/2021-06/villages.csv", 404, "unknown_category"),
        ("/donnees/editions/2021-13/departements.csv", 400, "bad_request"),
        ("/donnees/editions/juin/departements.json", 400, "bad_request"),
    ],
)
def test_files_of_unpublished_or_unknown_editions_are_json_errors(client, url, status, code):
    for headers in ({}, HTML):  # data, never a page: JSON even for a browser
        response = client.get(url, headers=headers)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == code


# --- the /donnees page -----------------------------------------------------------------------


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_data_page_lists_each_published_edition_with_its_files(client):
    response = client.get("/donnees", headers=HTML)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    months = re.findall(r'class="edition" id="palmares-(\d{4}-\d{2})"', html)
    assert months == [JULY, "2021-06", "2021-05"]
    assert f'href="/donnees/editions/{JULY}/petites-villes.csv"' in html
    assert f'href="/donnees/editions/{JULY}/petites-villes.json"' in html
    assert 'href="/donnees/editions/2021-06/departements.csv"' in html
    row = re.search(rf'<tr id="fichiers-{JULY}-petites-villes">.*?</tr>', html, re.S)
    assert row and "520" in row.group(0)
    empty = re.search(r'<tr id="fichiers-2021-06-regions">.*?</tr>', html, re.S)
    assert empty and "aucun territoire classé" in empty.group(0) and ".csv" not in empty.group(0)
    text = text_of(html)
    assert "Palmarès de juillet 2021" in text
    assert "?format=csv" in text and 'href="/docs"' in html


def test_the_data_page_has_the_dictionary_licences_citation_and_method(client):
    html = client.get("/donnees", headers=HTML).text
    text = text_of(html)
    for column in EDITION_COLUMNS:
        assert f"<code>{column.name}</code>" in html, column.name
    for name in ("date", "period", "ranked", "followers", "posts"):
        assert f"<code>{name}</code>" in html, name
    assert 'href="https://www.etalab.gouv.fr/licence-ouverte-open-licence/"' in html
    assert "Licence Ouverte / Open Licence 2.0" in text
    assert "decoupage-administratif" in text and "6.0.0" in text and "INSEE" in text
    assert "DGCL" in text
    citation = re.search(
        r'<blockquote class="citation" id="citation">(.*?)</blockquote>', html, re.S
    )
    assert citation
    cited = text_of(citation.group(1)).strip()
    assert cited.startswith(
        "Observatoire des collectivités sur les réseaux sociaux, classement des départements, "
        "édition de juillet 2021, consulté le "
    )
    assert cited.endswith("http://testserver/donnees")
    assert "méthodologie version 1" in text and 'href="/methodologie"' in html
    assert '<a href="/donnees" aria-current="page">Données</a>' in html


def test_every_page_links_to_the_data_page(client):
    html = client.get("/", headers=HTML).text
    assert '<a href="/donnees">Données</a>' in html


# --- CORS ------------------------------------------------------------------------------------

ORIGIN = {"Origin": "https://journal.example"}


def test_public_reads_are_open_to_every_origin(client):
    for url in (
        "/api/v1/standings/departements",
        "/api/v1/standings/departements?format=csv",
        "/api/v1/categories",
        "/api/v1/standings/nope",  # errors too: a page can read why
        f"/donnees/editions/{JULY}/petites-villes.csv",
    ):
        response = client.get(url, headers=ORIGIN)
        assert response.headers["access-control-allow-origin"] == "*", url
        assert "ETag" in response.headers["access-control-expose-headers"], url
        assert "access-control-allow-credentials" not in response.headers


def test_pages_and_operator_actions_get_no_cors_header(client):
    for page in ("/", "/donnees", "/classements/departements"):
        response = client.get(page, headers=ORIGIN | HTML)
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers, page
    put = client.put("/api/v1/territories/dep-32/account", json={"handle": "gers"}, headers=ORIGIN)
    post = client.post(f"/api/v1/editions/{JULY}/publish", headers=ORIGIN)
    for response in (put, post):
        assert response.status_code == 401  # no token: refused, and no CORS header either
        assert "access-control-allow-origin" not in response.headers


def test_a_preflight_for_a_read_is_answered_and_one_for_a_write_is_not(client):
    read = client.options(
        "/api/v1/standings/departements",
        headers=ORIGIN
        | {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "accept"},
    )
    assert read.status_code == 204
    assert read.headers["access-control-allow-origin"] == "*"
    assert read.headers["access-control-allow-methods"] == "GET, HEAD"
    assert "If-None-Match" in read.headers["access-control-allow-headers"]
    assert read.headers["x-content-type-options"] == "nosniff"
    files = client.options(
        f"/donnees/editions/{JULY}/petites-villes.json",
        headers=ORIGIN | {"Access-Control-Request-Method": "GET"},
    )
    assert files.status_code == 204 and files.headers["access-control-allow-origin"] == "*"
    write = client.options(
        "/api/v1/territories/dep-32/account",
        headers=ORIGIN | {"Access-Control-Request-Method": "PUT"},
    )
    assert write.status_code == 405 and "access-control-allow-origin" not in write.headers
    page = client.options("/donnees", headers=ORIGIN | {"Access-Control-Request-Method": "GET"})
    assert page.status_code == 405 and "access-control-allow-origin" not in page.headers
    # An OPTIONS that is no preflight stays what it was: a method the API does not serve.
    plain = client.options("/api/v1/standings/departements")
    assert plain.status_code == 405
    assert plain.json()["error"]["code"] == "method_not_allowed"


def test_before_any_edition_the_data_page_says_so_and_no_file_exists(
    redis_server: RedisServer, tmp_path
):
    settings = Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/6",
        rate_limit_enabled=False,
        run_dir=tmp_path,
    )
    empty = redis.Redis.from_url(settings.redis_url)
    try:
        empty.flushdb()
        with TestClient(create_app(settings)) as fresh:
            html = fresh.get("/donnees", headers=HTML).text
            assert "Aucun palmarès n’a encore été publié" in html
            assert 'class="edition"' not in html
            assert "édition de [mois et année]" in text_of(html)
            for headers in ({}, HTML):  # data, never a page: JSON even for a browser
                missing = fresh.get("/donnees/editions/2021-06/departements.csv", headers=headers)
                assert missing.status_code == 404
                assert missing.json()["error"]["code"] == "unknown_edition"
    finally:
        empty.close()
