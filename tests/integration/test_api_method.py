"""The method in the open, over a real API on a seeded real Redis: `/methodologie` shows the
whole of docs/methodology.md and a calculator that scores exactly as the rankings do (the
worked example to the digit, random inputs against `score_summary`), answering 422 with a
French message next to each unusable field; `/couverture` and `GET /api/v1/coverage` count
what the registry and the seeded view hold, per category and per région.

The data: the lists' data of test_pages_lists.py (the story's seven départements, Ariège's link
dead, one simulated account; 250 ranked petites villes), plus three ranked communautés de
communes (one astride two régions) and two grandes villes given an account but never observed
(an account, not measured), all written by the scorer's and the publisher's own code."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from services.api.app import create_app
from services.common.contracts import CATEGORY_IDS, METHODOLOGY_VERSION
from services.common.localstack import RedisServer
from services.common.methodology import SnapshotSummary, score_summary
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore
from tests.conftest import REPO_ROOT
from tests.integration.test_api_story import ACCOUNTS, DEAD, OFFSETS, SIMULATED
from tests.integration.test_pages_lists import rank_accounts
from tests.integration.test_pages_lists import seed as seed_lists

HTML = {"Accept": "text/html"}
UNOBSERVED = ("com-13055", "com-69123")  # Marseille, Lyon: an account, no snapshot yet


def _communes_de_communes() -> list:
    """Three CC: the first one astride two régions, then two of one région each."""
    members = load_registry().by_category("communautes-communes")
    astride = next(t for t in members if len(t.regions) == 2)
    single = [t for t in members if len(t.regions) == 1 and t.regions != astride.regions][:2]
    return [astride, *single]


async def seed(redis_url: str) -> None:
    await seed_lists(redis_url)
    await rank_accounts(
        redis_url,
        _communes_de_communes(),
        handle_prefix="cc",
        followers=lambda index: 3000 + 500 * index,
        interactions=lambda index: 30 + index,
    )
    redis = Redis.from_url(redis_url)
    try:
        updater = StandingsUpdater(ScorerStore(redis, ViewKeys(0)), load_registry())
        for tid in UNOBSERVED:
            await updater.apply_account(tid, f"gv.{tid[4:]}", False, version=next(OFFSETS))
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def method_settings(redis_server: RedisServer, tmp_path_factory) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/2",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("method"),
    )


@pytest.fixture(scope="module")
def client(method_settings: Settings) -> Iterator[TestClient]:
    asyncio.run(seed(method_settings.redis_url))
    with TestClient(create_app(method_settings), raise_server_exceptions=False) as test_client:
        yield test_client


def text_of(html: str) -> str:
    """The text a reader sees, spaces collapsed (the narrow no-break spaces kept)."""
    return unescape(re.sub(r"[ \t\r\n]+", " ", re.sub(r"<[^>]+>", " ", html)))


def score_cell(html: str) -> tuple[str, str]:
    """(data-score, shown text) of the calculator's result."""
    (found,) = re.findall(
        r'<output id="calc-score"[^>]*data-score="([^"]+)"[^>]*>(.*?)</output>', html
    )
    return found[0], text_of(found[1]).strip()


def points_cells(html: str) -> list[tuple[str, str]]:
    """(data-points, shown text) of the five lines, in order."""
    return [
        (raw, shown.strip())
        for raw, shown in re.findall(
            r'<td class="num points" data-points="([^"]+)">([^<]+)</td>', html
        )
    ]


def field_error(html: str, name: str) -> str | None:
    """The message shown under a field (None: none)."""
    found = re.findall(
        rf'<div class="field invalid">\s*<label for="calc-{name}">.*?'
        rf'<p class="field-error" id="calc-{name}-erreur">([^<]+)</p>',
        html,
        re.S,
    )
    return unescape(found[0]) if found else None


# --- /methodologie: the document ------------------------------------------------------------


def test_the_page_shows_every_heading_of_the_document_and_its_contents(client):
    response = client.get("/methodologie", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    text = text_of(html)
    document = (REPO_ROOT / "docs" / "methodology.md").read_text(encoding="utf-8")
    headings = re.findall(r"^#{1,3} (.+)$", document, re.M)
    assert len(headings) >= 15
    for heading in headings:
        assert heading in text, heading
    assert re.search(r'<h1 id="titre">Méthodologie du classement — version 1</h1>', html)
    contents = re.search(r'<nav class="toc" aria-labelledby="sommaire">(.*?)</nav>', html, re.S)
    assert contents is not None
    for anchor in re.findall(r'<h[23] id="([^"]+)">', html.split('<div class="doc">', 1)[1]):
        if anchor not in ("calculateur-titre", "resultat-titre"):
            assert f'href="#{anchor}"' in contents.group(1), anchor
    assert f"version {METHODOLOGY_VERSION}" in text
    # Its tables render as tables; its code stays code.
    assert "<th>indicateur</th>" in html and "<td>engagement</td>" in html
    assert "<code>methodology_version: 1</code>" in html


# --- /methodologie: the calculator ----------------------------------------------------------


def test_the_calculator_holds_and_gives_the_worked_example(client):
    html = client.get("/methodologie", headers=HTML).text
    for name, value in (
        ("abonnes", "15000"),
        ("abonnements", "300"),
        ("publications", "20"),
        ("interactions", "9000"),
        ("population", "200000"),
    ):
        assert re.search(rf'id="calc-{name}" name="{name}" value="{value}"', html), name
    assert [shown for _, shown in points_cells(html)] == [
        "54,7826",
        "69,4732",
        "66,6667",
        "54,4023",
        "84,9485",
    ]
    assert score_cell(html) == ("63.0373", "63,0373")
    assert "Résultat de l’exemple détaillé" in text_of(html)
    asked = client.get(
        "/methodologie",
        params={
            "abonnes": "15 000",
            "abonnements": "300",
            "publications": "20",
            "interactions": "9 000",
            "population": "200 000",
        },
        headers=HTML,
    )
    assert asked.status_code == 200
    assert score_cell(asked.text) == ("63.0373", "63,0373")
    assert [raw for raw, _ in points_cells(asked.text)] == [
        "54.78260869565217",
        "69.47321609278089",
        "66.66666666666666",
        "54.402281476392034",
        "84.94850021680094",
    ]


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    followers=st.integers(0, 10**9),
    follows=st.integers(0, 10**9),
    posts=st.integers(0, 200),
    interactions=st.integers(0, 10**12),
    population=st.integers(0, 10**8),
)
def test_the_calculator_scores_as_score_summary(
    client, followers, follows, posts, interactions, population
):
    interactions = interactions if posts else 0
    response = client.get(
        "/methodologie",
        params={
            "abonnes": followers,
            "abonnements": follows,
            "publications": posts,
            "interactions": interactions,
            "population": population,
        },
        headers=HTML,
    )
    assert response.status_code == 200, text_of(response.text)[:500]
    expected = score_summary(
        SnapshotSummary(
            observed_at="2021-06-30T06:00:00Z",
            event_id="e",
            followers=followers,
            follows=follows,
            posts=posts,
            engagement=interactions / (posts * followers) if posts and followers else None,
            likes_hidden=False,
        ),
        population,
    )
    assert score_cell(response.text)[0] == repr(expected.score)
    indicators = expected.indicators_dict()
    assert [float(raw) for raw, _ in points_cells(response.text)] == [
        indicators[name]["points"]
        for name in ("engagement", "reach", "activity", "audience", "ratio")
    ]


@pytest.mark.parametrize(
    ("name", "typed", "message"),
    [
        ("abonnes", "-15", "Indiquez un nombre positif ou nul."),
        (
            "abonnes",
            "beaucoup",
            "Ce n’est pas un nombre : indiquez des chiffres (par exemple 15 000).",
        ),
        ("abonnements", "2,5", "Indiquez un nombre entier, sans virgule."),
        (
            "publications",
            "500",
            "Nombre trop grand (au plus 200 : un relevé retient au plus 200 publications).",
        ),
        ("interactions", "9" * 30, "Nombre trop grand (au plus 1 000 000 000 000)."),
        ("population", "", "Indiquez un nombre."),
        (
            "population",
            "1" + "0" * 4400,
            "Nombre trop grand (au plus 100 000 000 : aucun territoire français n’est aussi "
            "peuplé).",
        ),
    ],
)
def test_an_unusable_field_answers_422_with_its_message_beside_it(client, name, typed, message):
    params = {
        "abonnes": "15000",
        "abonnements": "300",
        "publications": "20",
        "interactions": "9000",
        "population": "200000",
        name: typed,
    }
    response = client.get("/methodologie", params=params, headers=HTML)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert field_error(html, name) == message
    assert re.search(rf'id="calc-{name}" name="{name}" value="[^"]*"[^>]*aria-invalid="true"', html)
    assert 'role="alert"' in html and "un champ est à corriger" in text_of(html)
    assert 'id="calc-score"' not in html  # no result from unusable figures
    assert "Méthodologie du classement" in html  # still the whole page


def test_a_partial_or_odd_query_is_a_422_page_never_a_500(client):
    only_one = client.get("/methodologie", params={"abonnes": "100"}, headers=HTML)
    assert only_one.status_code == 422
    assert "4 champs sont à corriger" in text_of(only_one.text)
    assert field_error(only_one.text, "population") == "Indiquez un nombre."
    no_post = client.get(
        "/methodologie",
        params={
            "abonnes": "100",
            "abonnements": "3",
            "publications": "0",
            "interactions": "5",
            "population": "1000",
        },
    )
    assert no_post.status_code == 422
    assert field_error(
        no_post.text,
        "interactions",
    ).startswith("Sans publication")
    for query in (
        "abonnes=%00&abonnements=%FF&publications=&interactions=&population=",
        "abonnes=1&abonnes=2&abonnements=3&publications=4&interactions=5&population=6",
        "abonnes=" + "<script>" * 50 + "&population=\u0663",
    ):
        response = client.get(f"/methodologie?{query}")
        assert response.status_code in (200, 422), (query, response.status_code)
        assert "<script><script>" not in response.text
    zero = client.get(
        "/methodologie",
        params={
            "abonnes": 0,
            "abonnements": 0,
            "publications": 0,
            "interactions": 0,
            "population": 0,
        },
    )
    assert zero.status_code == 200 and score_cell(zero.text) == ("0.0", "0,0000")
    assert "non défini (aucune publication ou aucun abonné)" in text_of(zero.text)


def test_the_territory_page_links_to_the_calculator_with_its_own_figures(client):
    detail = client.get("/api/v1/territories/dep-32").json()
    html = client.get("/territoires/dep-32", headers=HTML).text
    (link,) = re.findall(r'<a href="(/methodologie\?[^"]+)"', html)
    calculated = client.get(unescape(link), headers=HTML)
    assert calculated.status_code == 200
    assert float(score_cell(calculated.text)[0]) == detail["current"]["score"]
    assert 'href="/methodologie"' in html


# --- /couverture and /api/v1/coverage -------------------------------------------------------


def expected_coverage(client: TestClient) -> dict[str, Any]:
    """What the coverage must say, from the registry, what was seeded, the live standings
    (per région through their own `region` filter) and the dead-links list."""
    registry = load_registry()
    accounts = (
        set(ACCOUNTS)
        | {t.id for t in _communes_de_communes()}
        | set(UNOBSERVED)
        | {tid for tid in _seeded_petites_villes(client)}
    )
    dead = {
        t["id"]
        for item in client.get("/api/v1/dead-links").json()["items"]
        for t in item["territories"]
    }
    assert dead == {DEAD}
    expected: dict[str, Any] = {}
    for category in CATEGORY_IDS:
        members = {t.id for t in registry.by_category(category)}
        ranked = _ranked(client, category)
        regions = {}
        for code in sorted({c for t in registry.by_category(category) for c in t.regions}):
            inside = {t.id for t in registry.by_category(category) if code in t.regions}
            filtered = (
                client.get(
                    f"/api/v1/standings/{category}", params={"region": code, "limit": 1}
                ).json()["total"]
                if category != "regions"
                else len(inside & ranked)
            )
            regions[code] = {
                "territories": len(inside),
                "with_account": len(inside & accounts),
                "simulated": len(inside & SIMULATED),
                "measured": filtered,
                "dead_links": len(inside & dead),
            }
        expected[category] = {
            "territories": len(members),
            "with_account": len(members & accounts),
            "simulated": len(members & SIMULATED),
            "measured": len(ranked),
            "dead_links": len(members & dead),
            "regions": regions,
        }
    return expected


def _ranked(client: TestClient, category: str) -> set[str]:
    body = client.get(f"/api/v1/standings/{category}", params={"limit": 500}).json()
    assert body["total"] <= 500
    return {item["id"] for item in body["items"]}


def _seeded_petites_villes(client: TestClient) -> set[str]:
    ranked = _ranked(client, "petites-villes")
    assert len(ranked) == 250
    return ranked


def test_the_json_coverage_counts_what_was_seeded(client):
    response = client.get("/api/v1/coverage")
    assert response.status_code == 200
    body = response.json()
    assert body["methodology_version"] == METHODOLOGY_VERSION
    assert body["as_of"] == "2021-07-03T06:00:00Z"
    expected = expected_coverage(client)
    assert [c["category"] for c in body["categories"]] == list(CATEGORY_IDS)
    for category in body["categories"]:
        want = expected[category["category"]]
        got = {key: category[key] for key in want if key != "regions"}
        assert got == {key: value for key, value in want.items() if key != "regions"}, category
        regions = {
            r["code"]: {key: r[key] for key in want["regions"][r["code"]]}
            for r in category["regions"]
        }
        assert regions == want["regions"], category["category"]
    departements = body["categories"][1]
    assert (departements["with_account"], departements["measured"]) == (7, 7)
    assert (departements["simulated"], departements["dead_links"]) == (1, 1)
    grandes = body["categories"][5]
    assert (grandes["territories"], grandes["with_account"], grandes["measured"]) == (42, 2, 0)
    totals = body["totals"]
    for key in ("territories", "with_account", "simulated", "measured", "dead_links"):
        assert totals[key] == sum(c[key] for c in body["categories"]), key
        assert totals[key] == sum(expected[c][key] for c in CATEGORY_IDS), key
    assert totals["territories"] == len(load_registry())
    # A région over all categories sums its rows of every category.
    across = {r["code"]: r for r in body["regions"]}
    assert len(across) == 18
    for code, row in across.items():
        for key in ("territories", "measured", "with_account"):
            assert row[key] == sum(
                r[key] for c in body["categories"] for r in c["regions"] if r["code"] == code
            )
    # The CC astride two régions counts in both.
    astride = _communes_de_communes()[0]
    cc = body["categories"][4]
    measured_in = Counter(r["code"] for r in cc["regions"] for _ in range(r["measured"]))
    for code in astride.regions:
        assert measured_in[code] >= 1
    assert sum(measured_in.values()) == cc["measured"] + 1


def test_the_coverage_page_shows_the_same_figures_in_french(client):
    response = client.get("/couverture", headers=HTML)
    assert response.status_code == 200
    html = response.text
    text = text_of(html)
    body = client.get("/api/v1/coverage").json()
    assert "7 départements mesurés sur 101" in text
    assert "0 grandes villes mesurées sur 42" in text
    assert "250 petites villes mesurées sur 34\u202f391" in text
    row = re.search(r'<tr id="c-departements">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = text_of(row.group(1))
    assert "Départements 101 7 6,9\u202f% 7 6,9\u202f% 1 14,3\u202f%" in cells
    total = text_of(re.search(r'<tr id="c-total">(.*?)</tr>', html, re.S).group(1))
    territories = f"{body['totals']['territories']:,}".replace(",", "\u202f")
    assert total.strip().startswith(f"Total {territories} {body['totals']['with_account']} ")
    assert "Occitanie" in text and "Île-de-France" in text
    assert "Dont 1 compte simulé" in text
    assert 'href="/api/v1/coverage"' in html
    assert 'href="/methodologie#eligibilite-qui-est-classe"' in html
    methodology = client.get("/methodologie", headers=HTML).text
    assert 'id="eligibilite-qui-est-classe"' in methodology
    assert 'id="liens-morts-comptes-introuvables-via-l-api"' in methodology


def test_both_pages_are_in_the_site_navigation(client):
    html = client.get("/", headers=HTML).text
    assert re.search(r'<a href="/methodologie"[^>]*>Méthodologie</a>', html)
    assert re.search(r'<a href="/couverture"[^>]*>Couverture</a>', html)
    page = client.get("/couverture", headers=HTML).text
    assert re.search(r'<a href="/couverture" aria-current="page">Couverture</a>', page)


def test_the_coverage_answers_well_under_30_ms(client):
    """Server time of the JSON and the page, measured in the process (TestClient)."""
    for path in ("/api/v1/coverage", "/couverture"):
        client.get(path)  # warm: the registry's sizes are counted once
        times = []
        for _ in range(30):
            started = time.perf_counter()
            assert client.get(path).status_code == 200
            times.append(time.perf_counter() - started)
        times.sort()
        assert times[len(times) // 2] < 0.030, (path, times)


def test_the_coverage_page_follows_the_view(client, method_settings):
    """The page rendered from equal figures is reused; new figures render a new page. (Last
    in the module: it gives Toulouse an account.)"""
    before = client.get("/couverture", headers=HTML).text
    assert client.get("/couverture", headers=HTML).text == before
    assert "0 grandes villes mesurées sur 42" in text_of(before)

    async def give_toulouse_an_account() -> None:
        redis = Redis.from_url(method_settings.redis_url)
        try:
            updater = StandingsUpdater(ScorerStore(redis, ViewKeys(0)), load_registry())
            await updater.apply_account("com-31555", "gv.31555", True, version=next(OFFSETS))
        finally:
            await redis.aclose()

    asyncio.run(give_toulouse_an_account())
    after = client.get("/couverture", headers=HTML).text
    row = re.search(r'<tr id="c-grandes-villes">(.*?)</tr>', after, re.S)
    assert row is not None and text_of(row.group(1)).split()[:4] == ["Grandes", "villes", "42", "3"]
    assert client.get("/api/v1/coverage").json()["categories"][5]["simulated"] == 1
