"""The JSON API and the public pages read what the scorer and the publisher wrote (the story
of test_api_story.py, in a real Redis): live standings with movement and link status,
filters, editions published and provisional, territory detail, rank changes, dead links,
command status, errors, ETags, rate limiting (behind a trusted proxy too), the self-hosted
Swagger UI at /docs, and the French pages."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import re
from collections.abc import Iterator

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from services.api.app import create_app
from services.api.coalesce import ReadCoalescer
from services.api.ratelimit import TokenBuckets
from services.api.read.rank_changes import FeedSlice
from services.api.read.standings import StandingsRepository
from services.common.events import build_command
from services.common.localstack import RedisServer, free_port
from services.common.settings import Settings
from services.common.view.keys import ViewKeys
from tests.integration.test_api_story import (
    ACCOUNTS,
    DEAD,
    OCCITANIE,
    SIMULATED,
    Story,
    tell_story,
)
from tests.services import REPO_ROOT, ServiceProcess, service_env, wait_for
from tests.signing import COMMAND_KEY

LIVE_ORDER = ["dep-32", "dep-52", "dep-75", "dep-38", "dep-09", "dep-01", "dep-31"]
EDITION_ORDER = ["dep-32", "dep-75", "dep-52", "dep-38", "dep-09", "dep-01", "dep-31"]


@pytest.fixture(scope="module")
def story_settings(redis_server: RedisServer, tmp_path_factory) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/8",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("api-reads"),
    )


@pytest.fixture(scope="module")
def story(story_settings: Settings) -> Story:
    return asyncio.run(tell_story(story_settings.redis_url))


@pytest.fixture(scope="module")
def client(story_settings: Settings, story: Story) -> Iterator[TestClient]:
    with TestClient(create_app(story_settings)) as test_client:
        yield test_client


def ids(body: dict) -> list[str]:
    return [item["id"] for item in body["items"]]


# --- live standings ---------------------------------------------------------------------------


def test_live_standings_carry_movement_since_the_latest_edition_and_link_status(client, story):
    body = client.get("/api/v1/standings/departements").json()
    assert ids(body) == LIVE_ORDER and body["total"] == 7
    assert [item["rank"] for item in body["items"]] == list(range(1, 8))
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert body["as_of"] == "2021-07-03T06:00:00Z" and body["movement_since"] == "2021-06"
    assert body["rank_changes_seq"] == story.rank_change_seqs["departements"]
    june = {
        item["id"]: item["national_rank"]
        for item in client.get("/api/v1/editions/2021-06/departements").json()["items"]
    }
    for item in body["items"]:
        assert item["movement"] == june[item["id"]] - item["national_rank"], item["id"]
        assert item["link_status"] == ("dead" if item["id"] == DEAD else "ok")
        assert item["simulated"] is (item["id"] in SIMULATED)
        assert item["handle"] == ACCOUNTS[item["id"]]
    moved = {item["id"]: item["movement"] for item in body["items"]}
    assert moved["dep-52"] == 1 and moved["dep-75"] == -1


def test_region_filter_ranks_within_the_region_with_national_ranks(client):
    body = client.get("/api/v1/standings/departements", params={"region": "76"}).json()
    assert ids(body) == [tid for tid in LIVE_ORDER if tid in OCCITANIE]
    assert [item["rank"] for item in body["items"]] == [1, 2, 3]
    assert [item["national_rank"] for item in body["items"]] == [
        LIVE_ORDER.index(tid) + 1 for tid in ids(body)
    ]
    assert body["total"] == 3


def test_pages_of_a_list_join_into_the_whole_list(client):
    pages = [
        client.get("/api/v1/standings/departements", params={"limit": 3, "offset": k}).json()
        for k in (0, 3, 6)
    ]
    assert [tid for page in pages for tid in ids(page)] == LIVE_ORDER
    assert [item["rank"] for item in pages[1]["items"]] == [4, 5, 6]


def test_json_items_are_the_same_whether_assembled_or_built(client, story_settings):
    app = client.app
    scored = app.state.scored

    async def read():
        from redis.asyncio import Redis

        redis = Redis.from_url(story_settings.redis_url)
        try:
            return await StandingsRepository(redis, ViewKeys(0)).page(
                "departements", None, offset=0, limit=10
            )
        finally:
            await redis.aclose()

    page = asyncio.run(read())
    for rank, row in enumerate(page.rows, start=1):
        assert orjson.loads(scored.item_json(row, rank)) == scored.item(row, rank)


def test_standings_answer_an_etag_and_304_when_unchanged(client):
    first = client.get("/api/v1/standings/departements")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = client.get("/api/v1/standings/departements", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
    edition = client.get("/api/v1/editions/2021-06/departements")
    assert edition.headers["cache-control"].startswith("public")
    again = client.get(
        "/api/v1/editions/2021-06/departements",
        headers={"If-None-Match": f'"x", {edition.headers["etag"]}'},
    )
    assert again.status_code == 304


# --- editions ---------------------------------------------------------------------------------


def test_a_published_edition_is_its_frozen_copy_with_streaks(client):
    body = client.get("/api/v1/editions/2021-06/departements").json()
    assert body["status"] == "published" and body["edition"] == "2021-06"
    assert body["published_at"] and body["as_of"] == body["published_at"]
    assert ids(body) == EDITION_ORDER
    leader = body["items"][0]
    assert leader["streak"] == 2  # at #1 in May and in June
    assert all(item["streak"] == 0 for item in body["items"][1:])
    assert all(item["movement"] == 0 for item in body["items"])  # same order as May
    dead = next(item for item in body["items"] if item["id"] == DEAD)
    assert dead["link_status"] == "dead"  # as it was at publication
    assert next(i for i in body["items"] if i["id"] == "dep-01")["simulated"] is True
    may = client.get("/api/v1/editions/2021-05/departements").json()
    assert [item["movement"] for item in may["items"]] == [None] * 7  # the first edition
    occitanie = client.get("/api/v1/editions/2021-06/departements", params={"region": "76"}).json()
    assert [i["rank"] for i in occitanie["items"]] == [1, 2, 3]
    assert [i["national_rank"] for i in occitanie["items"]] == [1, 5, 7]


def test_a_month_not_published_yet_is_provisional(client):
    body = client.get("/api/v1/editions/2021-07/departements").json()
    assert body["status"] == "provisional" and body["published_at"] is None
    assert set(ids(body)) == {"dep-75", "dep-52"}  # observed in July
    assert body["movement_since"] == "2021-06"
    empty = client.get("/api/v1/editions/2021-07/regions").json()
    assert empty["total"] == 0 and empty["items"] == []


def test_editions_list_and_status_per_category(client):
    listing = client.get("/api/v1/editions").json()
    assert [(e["edition"], e["status"]) for e in listing["editions"]] == [
        ("2021-07", "provisional"),
        ("2021-06", "published"),
        ("2021-05", "published"),
    ]
    assert listing["latest"] == "2021-06" and listing["watermark"] == "2021-07-03T06:00:00Z"
    june = client.get("/api/v1/editions/2021-06").json()
    assert june["status"] == "published" and june["command_id"]
    by_category = {c["category"]: c for c in june["categories"]}
    assert len(by_category) == 8
    assert by_category["departements"] == {
        "category": "departements",
        "label": "Départements",
        "status": "published",
        "ranked": 7,
        "parts": 1,
        "published_at": june["published_at"],
        "url": "/api/v1/editions/2021-06/departements",
    }
    july = client.get("/api/v1/editions/2021-07").json()
    assert july["status"] == "provisional" and july["publishable_at"] == "2021-08-01T22:00:00Z"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/editions/2020-01", 404, "unknown_edition"),
        ("/api/v1/editions/2020-01/departements", 404, "unknown_edition"),
        ("/api/v1/editions/2021-13", 400, "bad_request"),
        ("/api/v1/editions/2021-6/departements", 400, "bad_request"),
        ("/api/v1/editions/juin/departements", 400, "bad_request"),
        ("/api/v1/editions/2021-06/cantons", 404, "unknown_category"),
        ("/api/v1/editions/2021-06/departements?limit=0", 422, "invalid_parameter"),
    ],
)
def test_unknown_and_malformed_months_get_clear_errors(client, path, status, code):
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


# --- territories ------------------------------------------------------------------------------


def test_territory_detail_gives_ranks_breakdown_link_and_history(client):
    gers = client.get("/api/v1/territories/dep-32").json()
    assert gers["status"] == "ranked" and gers["name"] == "Gers"
    national = gers["ranks"]["national"]  # percentile and neighbours: test_territory_neighbours
    assert (national["rank"], national["total"], national["percentile"]) == (1, 7, 100.0)
    (occitanie,) = gers["ranks"]["regions"]
    assert [occitanie[key] for key in ("code", "name", "rank", "total")] == [
        "76",
        "Occitanie",
        1,
        3,
    ]
    assert gers["handle"] == "gersledepartement" and gers["link_status"] == "ok"
    lines = gers["current"]["breakdown"]
    assert [(line["indicator"], line["weight"]) for line in lines] == [
        ("engagement", 5),
        ("reach", 4),
        ("activity", 3),
        ("audience", 2),
        ("ratio", 1),
    ]
    weighted = sum(line["points"] * line["weight"] for line in lines) / 15
    assert round(weighted, 4) == gers["current"]["score"]
    assert [(h["edition"], h["rank"], h["followers"], h["streak"]) for h in gers["history"]] == [
        ("2021-05", 1, 15000, 1),
        ("2021-06", 1, 16000, 2),
    ]
    ariege = client.get("/api/v1/territories/dep-09").json()
    assert ariege["link_status"] == "dead" and ariege["ranks"]["regions"][0]["rank"] == 2
    corse = client.get("/api/v1/territories/dep-2A").json()
    assert corse["status"] == "unranked" and corse["current"] is None
    assert corse["ranks"]["national"] == {
        "rank": None,
        "total": 7,
        "percentile": None,
        "neighbours": None,
    }
    assert [h["rank"] for h in corse["history"]] == [None, None]
    commune = client.get("/api/v1/territories/com-32013").json()  # Auch
    assert [g["code"] for g in commune["ranks"]["departements"]] == ["32"]
    missing = client.get("/api/v1/territories/dep-99")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_territory"


# --- rank changes, dead links, commands -------------------------------------------------------


def test_rank_changes_after_a_seq_in_order(client, story):
    last = story.rank_change_seqs["departements"]
    body = client.get("/api/v1/rank-changes", params={"category": "departements"}).json()
    assert [event["seq"] for event in body["events"]] == list(range(1, last + 1))
    assert body["last_seq"] == last and body["oldest_seq"] == 1 and body["missed"] is False
    assert body["events"][-1]["top"] == LIVE_ORDER  # the last event is the list shown
    after = client.get(
        "/api/v1/rank-changes", params={"category": "departements", "after_seq": 1, "limit": 1}
    ).json()
    assert [event["seq"] for event in after["events"]] == [2]
    assert after["next_after_seq"] == 2
    none = client.get("/api/v1/rank-changes", params={"category": "regions"}).json()
    assert none["events"] == [] and none["last_seq"] == 0
    assert client.get("/api/v1/rank-changes").status_code == 422
    assert client.get("/api/v1/rank-changes", params={"category": "x"}).status_code == 404


def test_missed_events_and_foreign_cursors_are_recognised():
    kept = FeedSlice(events=[], last_seq=1500, oldest_seq=501)
    assert kept.missed(400) and not kept.missed(500) and not kept.missed(1500)
    assert kept.unknown_cursor(1501) and not kept.unknown_cursor(1500)
    assert not FeedSlice(events=[], last_seq=0, oldest_seq=None).missed(0)


def test_dead_links_list_the_dead_account_and_its_territories(client):
    body = client.get("/api/v1/dead-links").json()
    assert body["total"] == 1
    assert body["items"] == [
        {
            "platform": "instagram",
            "handle": ACCOUNTS[DEAD],
            "since": "2021-06-29T06:00:00Z",
            "territories": [{"id": DEAD, "name": "Ariège", "category": "departements"}],
        }
    ]
    assert client.get("/api/v1/dead-links", params={"category": "regions"}).json()["total"] == 0


def test_openapi_says_a_dead_link_is_an_account_the_api_cannot_see(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/dead-links"]["get"]
    described = operation["summary"] + operation["description"]
    assert "cannot see" in described and "private" in described
    assert "not a professional (Business or Creator) account" in described
    schemas = spec["components"]["schemas"]
    for model in ("StandingsItem", "TerritoryDetail", "HistoryPoint"):
        status = schemas[model]["properties"]["link_status"]["description"]
        assert "private" in status and "not necessarily gone" in status, model
    assert "not necessarily deleted" in schemas["DeadLinks"]["description"]


def test_command_status_is_pending_until_a_result_then_done(client):
    published = build_command(
        command="publish_edition",
        args={"edition": "2021-06"},
        requested_by="cli",
        requested_at="2021-07-02T08:00:00Z",
        key=COMMAND_KEY,
    )
    done = client.get(f"/api/v1/commands/{published['event_id']}").json()
    assert done["status"] == "done" and done["reason"].startswith("published 2021-06")
    pending = client.get(f"/api/v1/commands/{'0' * 64}").json()
    assert pending == {"command_id": "0" * 64, "status": "pending", "reason": None, "at": None}
    malformed = client.get("/api/v1/commands/not-an-id")
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "bad_request"


# --- guards -----------------------------------------------------------------------------------


def test_an_oversized_body_is_refused_with_413_before_anything_else(client):
    big = b'{"handle": "' + b"a" * 10_000 + b'"}'
    response = client.put(
        "/api/v1/territories/dep-32/account",
        content=big,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    streamed = client.put("/api/v1/territories/dep-32/account", content=chunks())
    assert streamed.status_code == 413


def test_rate_limit_answers_429_with_retry_after_and_spares_health(story_settings, story):
    limited = story_settings.model_copy(
        update={"rate_limit_enabled": True, "rate_limit_per_minute": 3}
    )
    with TestClient(create_app(limited)) as client:
        codes = [client.get("/api/v1/categories").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        refused = client.get("/api/v1/standings/departements")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limited"
        assert client.get("/healthz").status_code == 200
        page = client.get("/classements/departements", headers={"Accept": "text/html"})
        assert page.status_code == 429 and "Trop de requêtes" in page.text


@pytest.mark.parametrize(
    ("trusted", "budgets"),
    [
        # The test's peer, 127.0.0.1, is the listed proxy: each forwarded client has a budget.
        ("127.0.0.1", {"198.51.100.7": [200, 200, 200, 429], "203.0.113.9": [200]}),
        # By default no proxy is trusted: X-Forwarded-For is ignored, the peer has one budget.
        (None, {f"198.51.100.{n}": [200 if n < 3 else 429] for n in range(5)}),
    ],
    ids=["trusted-proxy", "default-trusts-no-proxy"],
)
def test_rate_limit_keys_on_the_forwarded_client_only_behind_a_trusted_proxy(
    story_settings, story, tmp_path, trusted, budgets
):
    """The real service (uvicorn as `observatoire service api` runs it), so that uvicorn's
    proxy-headers handling is the one deployed; X-Forwarded-For values are only header text."""
    settings = story_settings.model_copy(update={"api_port": free_port()})
    extra = {"OBS_RATE_LIMIT_ENABLED": "true", "OBS_RATE_LIMIT_PER_MINUTE": "3"}
    if trusted is not None:
        extra["OBS_FORWARDED_ALLOW_IPS"] = trusted
    api = ServiceProcess(["service", "api"], service_env(settings, **extra), tmp_path / "api.log")
    url = f"http://127.0.0.1:{settings.api_port}"
    api.start()
    try:
        wait_for(
            lambda: httpx.get(url + "/readyz").status_code == 200,
            timeout=30,
            what=f"the API to be ready:\n{api.log()[-2000:]}",
            interval=0.1,
        )
        with httpx.Client(base_url=url) as http:
            codes = {
                client: [
                    http.get("/api/v1/categories", headers={"X-Forwarded-For": client}).status_code
                    for _ in expected
                ]
                for client, expected in budgets.items()
            }
        assert codes == budgets
    finally:
        api.terminate()


def test_forwarded_allow_ips_takes_addresses_and_networks_only():
    def allowed(value: str) -> str:
        return Settings(_env_file=None, forwarded_allow_ips=value).forwarded_allow_ips

    assert allowed("") == ""
    assert allowed(" 10.0.0.5, 172.18.0.0/16 ,::1") == "10.0.0.5,172.18.0.0/16,::1"
    assert allowed(" * ") == "*"
    for wrong in ("nginx", "10.0.0.5/16", "*, 10.0.0.5", "10.0.0.300"):
        with pytest.raises(ValidationError, match="forwarded_allow_ips"):
            allowed(wrong)


def test_token_buckets_refill_and_stay_bounded():
    now = [0.0]
    buckets = TokenBuckets(60, clock=lambda: now[0], max_clients=2)
    assert [buckets.take("a") for _ in range(60)] == [0.0] * 60
    assert buckets.take("a") == pytest.approx(1.0)  # one token a second
    now[0] += 1.0
    assert buckets.take("a") == 0.0
    buckets.take("b")
    buckets.take("c")
    assert len(buckets) <= 2  # the least recently seen client was forgotten


async def test_identical_concurrent_reads_share_one_read_that_starts_after_them():
    coalescer: ReadCoalescer[int] = ReadCoalescer()
    started: list[int] = []
    gate = asyncio.Event()

    async def read() -> int:
        started.append(len(started))
        await gate.wait()
        return len(started)

    first = asyncio.create_task(coalescer.run("k", read))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert started == [0]  # the first read is in flight
    later = [asyncio.create_task(coalescer.run("k", read)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(first, *later)
    assert results[0] == 1 and set(results[1:]) == {2}  # one more read, started after them
    assert coalescer.reads == 2 and coalescer.requests == 11


def test_redis_unavailable_answers_503_everywhere_but_healthz(story_settings):
    down = story_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with TestClient(create_app(down)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        for path in (
            "/api/v1/standings/departements",
            "/api/v1/editions",
            "/api/v1/editions/2021-06/departements",
            "/api/v1/territories/dep-32",
            "/api/v1/rank-changes?category=regions",
            "/api/v1/dead-links",
        ):
            response = client.get(path)
            assert response.status_code == 503, path
            assert response.json()["error"]["code"] == "redis_unavailable"
        page = client.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 503 and "indisponible" in page.text


def test_operator_actions_without_a_configured_token_are_disabled(story_settings):
    for token in (None, SecretStr("")):
        settings = story_settings.model_copy(update={"operator_token": token})
        with TestClient(create_app(settings)) as client:
            response = client.post(
                "/api/v1/editions/2021-06/publish", headers={"Authorization": "Bearer x"}
            )
            assert response.status_code == 503
            error = response.json()["error"]
            assert error["code"] == "operator_actions_disabled"
            assert "OBS_OPERATOR_TOKEN" in error["message"]


# --- docs -------------------------------------------------------------------------------------

SWAGGER = REPO_ROOT / "services" / "api" / "static" / "swagger"
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def test_docs_page_loads_swagger_ui_from_the_api_itself(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "cdn." not in html and "http://" not in html and "https://" not in html
    scripts = re.findall(r'<script src="([^"]*)"', html)
    styles = re.findall(r'<link type="text/css" rel="stylesheet" href="([^"]*)"', html)
    icons = re.findall(r'<link rel="shortcut icon" href="([^"]*)"', html)
    assert scripts and styles and icons
    for url in scripts + styles + icons:
        assert url.startswith("/static/swagger/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert asset.headers["content-type"].startswith(ASSET_TYPES[suffix]), url
        assert asset.content == (SWAGGER / url.rsplit("/", 1)[1]).read_bytes()
    # The policy allows the page's one inline script by its hash, and nothing from elsewhere.
    (inline,) = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    policy = response.headers["content-security-policy"]
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    assert "unsafe-inline" not in policy and "default-src 'self';" in policy
    assert "url: '/openapi.json'" in inline and '"validatorUrl": null' in inline
    assert client.get("/openapi.json").json()["info"]["title"].startswith("Observatoire")
    assert client.get("/redoc").status_code == 404  # FastAPI's CDN-loaded ReDoc is off


def test_vendored_swagger_ui_files_match_their_checksums():
    listed = (SWAGGER / "swagger.sha256").read_text().splitlines()
    sums = dict(reversed(line.split("  ", 1)) for line in listed)
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"} <= set(sums)
    for name, digest in sums.items():
        assert hashlib.sha256((SWAGGER / name).read_bytes()).hexdigest() == digest, name
    assert "swagger-ui-dist@5.35.0" in (SWAGGER / "CREDITS.txt").read_text()


# --- pages ------------------------------------------------------------------------------------


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_home_page_shows_each_category_leader_and_the_latest_edition(client):
    response = client.get("/")
    assert response.status_code == 200 and 'lang="fr"' in response.text
    text = text_of(response.text)
    assert "Dernier palmarès publié : juin 2021" in text
    assert "Gers" in text and "2e mois de suite" in text
    for label in ("Régions", "Départements", "Communautés de communes", "Petites villes"):
        assert label in text


def test_standings_page_lists_ranks_handles_badges_and_movement(client):
    response = client.get("/classements/departements")
    assert response.status_code == 200
    html = response.text
    rows = re.findall(r'<tr id="t-([^"]+)"', html)
    assert rows == LIVE_ORDER
    text = text_of(html)
    assert "inopérant" not in text
    dead_row = html.split(f'<tr id="t-{DEAD}"', 1)[1].split("</tr>", 1)[0]
    assert "Compte introuvable via l’API Instagram" in text_of(dead_row)
    assert (  # the badge's full meaning, for a screen reader
        "Compte introuvable via l’API Instagram : supprimé, renommé, privé ou non professionnel"
        in text_of(dead_row)
    )
    assert text.count("Compte introuvable via l’API Instagram") == 2  # the badge, the legend
    legend = text_of(html.split('id="link-legend"', 1)[1].split("</div>", 1)[0])
    assert "Compte introuvable via l’API Instagram : supprimé, renommé, privé ou non" in legend
    assert "comptes publics et professionnels (Entreprise ou Créateur)" in legend
    assert "au dernier relevé" not in legend  # no suspect link in this list
    assert 'href="https://www.instagram.com/gersledepartement/"' in html
    assert "@sim.dep.01" in text and "simulé" in text
    assert 'href="https://www.instagram.com/sim.dep.01/"' not in html  # not a real account
    assert "gagne 1 place" in text and "perd 1 place" in text
    assert '<option value="76">Occitanie</option>' in html
    assert '<option value="2021-06">Palmarès de juin 2021</option>' in html
    assert 'data-stream="/api/v1/rank-changes/stream?category=departements&amp;after_seq=' in html
    assert "75,26" in text  # scores in French notation


def test_standings_page_for_a_region_and_for_an_edition(client):
    occitanie = text_of(client.get("/classements/departements?region=76").text)
    assert "Occitanie" in occitanie and "3 territoires classés en Occitanie" in occitanie
    assert "5e au classement national" in occitanie
    both = client.get("/classements/departements?region=11&departement=32").text
    assert "<h1>Départements · Gers</h1>" in both  # the form sends both: the narrower wins
    june = client.get("/classements/departements?edition=2021-06")
    text = text_of(june.text)
    assert "Palmarès de juin 2021 , publié le" in text or "Palmarès de juin 2021, publié le" in text
    assert "2e mois de suite en tête" in text
    assert "<h1>Top 50 · Départements</h1>" in june.text  # an edition publishes its top 50
    assert "data-stream" not in june.text  # an edition does not change
    assert client.get("/classements/departements?edition=2020-01").status_code == 404
    assert client.get("/classements/departements?edition=juin").status_code == 400
    assert "default-src 'self'" in june.headers["content-security-policy"]


def test_territory_page_shows_the_breakdown_and_its_svg_charts(client):
    response = client.get("/territoires/dep-32")
    assert response.status_code == 200
    html = response.text
    text = text_of(html)
    for label in ("Engagement", "Portée", "Activité", "Audience", "Ratio abonnés / abonnements"):
        assert label in text
    # Rank and followers in each edition, then score, rank and followers day after day.
    assert html.count("<svg") == 5 and 'role="img"' in html
    assert "Évolution du rang de Gers" in html and "1er" in text
    assert "Rang de Gers, jour après jour" in html
    assert "16 000" in text  # followers, French thousands separator


def test_a_dead_territory_page_says_what_the_api_missed_and_what_to_check(client):
    html = client.get(f"/territoires/{DEAD}").text
    text = text_of(html)
    assert "inopérant" not in text
    notice = text_of(html.split('aria-labelledby="compte"', 1)[1].split("</section>", 1)[0])
    assert "Compte Instagram à vérifier" in notice
    assert (
        "Compte introuvable via l’API Instagram : supprimé, renommé, privé ou non professionnel."
        in notice
    )
    assert f"Aux deux derniers relevés, l’API Instagram n’a pas vu @{ACCOUNTS[DEAD]}." in notice
    assert "Le territoire reste classé sur son dernier relevé réussi." in notice
    assert "Ce que le territoire peut vérifier :" in notice
    assert f"le compte existe toujours sous le nom @{ACCOUNTS[DEAD]}" in notice
    assert "il est public" in notice
    assert "c’est un compte professionnel (Entreprise ou Créateur)" in notice
    assert "contactez l’observatoire" in notice
    assert "/account" not in html and "PUT" not in html  # the operator command stays with them


def test_a_territory_whose_account_the_api_sees_has_no_account_notice(client):
    html = client.get("/territoires/dep-32").text
    assert 'aria-labelledby="compte"' not in html
    assert "Compte introuvable" not in html


def test_pages_answer_404_in_french_and_the_api_in_json(client):
    page = client.get("/classements/cantons", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "unknown category" in page.text or "cantons" in page.text
    territory = client.get("/territoires/dep-99", headers={"Accept": "text/html"})
    assert territory.status_code == 404 and "Page introuvable" in territory.text
    api = client.get("/api/v1/standings/cantons", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.json()["error"]["code"] == "unknown_category"


# --- daily history ----------------------------------------------------------------------------


def test_daily_history_gives_each_days_point_ranked_among_that_days_points(client, story):
    bodies = {tid: client.get(f"/api/v1/territories/{tid}/history").json() for tid in LIVE_ORDER}
    paris = bodies["dep-75"]
    assert paris["as_of"] == "2021-07-03T06:00:00Z" and paris["category"] == "departements"
    assert [p["date"] for p in paris["points"]] == ["2021-05-20", "2021-06-28", "2021-07-02"]
    assert all(p["period"] == "day" for p in paris["points"])
    surge = paris["points"][-1]
    assert (surge["followers"], surge["rank"], surge["ranked"]) == (2_000_000, 1, 1)
    assert surge["observed_at"] == "2021-07-02T06:00:00Z"
    # On 20 May every département was measured: their ranks that day order their scores.
    may = {
        tid: next(p for p in b["points"] if p["date"] == "2021-05-20") for tid, b in bodies.items()
    }
    by_score = sorted(may, key=lambda tid: (-may[tid]["score"], tid))
    assert [may[tid]["rank"] for tid in by_score] == list(range(1, 8))
    assert {p["ranked"] for p in may.values()} == {7}
    # The day's point is the standings' figure for that snapshot: the June edition's score.
    june = client.get("/api/v1/editions/2021-06/departements").json()["items"]
    june_scores = {item["id"]: item["score"] for item in june}
    for tid, body in bodies.items():
        point = next(p for p in body["points"] if p["date"] == "2021-06-28")
        if tid != "dep-09":  # Ariège's last June snapshot is its not_found: same point
            assert point["score"] == june_scores[tid], tid


def test_daily_history_errors_and_the_territory_page_draws_it(client, story):
    assert client.get("/api/v1/territories/dep-99/history").status_code == 404
    assert client.get("/api/v1/territories/com-01001/history").json()["points"] == []
    page = client.get("/territoires/dep-75").text
    assert "Jour après jour" in page
    for chart in ("daily-score-chart", "daily-rank-chart", "daily-followers-chart"):
        assert f'aria-labelledby="{chart}-title {chart}-desc"' in page
    assert page.count('<tr><th scope="row">') >= 3
    assert "1er sur 1" in page  # Paris alone measured on 2 July
    for chart in ("daily-score-chart", "daily-followers-chart"):
        svg = page.split(f'aria-labelledby="{chart}-title', 1)[1].split("</svg>", 1)[0]
        grid = svg.split('<g class="chart-grid">', 1)[1].split("</g>", 1)[0]
        ticks = re.findall(r">([^<]+)</text>", grid)
        assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), (chart, ticks)
    empty = client.get("/territoires/com-01001").text
    assert "Pas encore de relevé quotidien" in empty


def test_daily_history_in_csv_has_the_json_rows(client, story):
    body = client.get("/api/v1/territories/dep-32/history").json()
    answer = client.get("/api/v1/territories/dep-32/history", headers={"Accept": "text/csv"})
    assert answer.headers["content-type"].startswith("text/csv")
    assert "observatoire-historique-dep-32-" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == len(body["points"]) == 2
    for row, point in zip(rows, body["points"], strict=True):
        assert row["date"] == point["date"] and int(row["rank"]) == point["rank"]
        assert float(row["score"]) == point["score"] and int(row["followers"]) == point["followers"]
    assert client.get("/api/v1/territories/dep-32/history?format=csv").text == answer.text
