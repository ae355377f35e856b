"""The JSON API against a real Redis: the standings shape, filters, errors, ETag, readiness."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from services.api.app import create_app
from services.common.events import MetricsSnapshot, build_metrics_event
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore

# Versions of the account records applied (their offsets in obs.accounts.v1): increasing.
OFFSETS = itertools.count()

# Gers in June 2021 as in the worked example of ARCHITECTURE.md: 20 posts, 9,000 interactions.
WORKED_POSTS = [
    {
        "id": f"p{i}",
        "published_at": f"2021-06-{10 + i:02d}T12:00:00Z",
        "likes": 440,
        "comments": 10,
        "likes_hidden": False,
    }
    for i in range(20)
]


async def _seed(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    await redis.flushdb()
    registry = load_registry()
    store = ScorerStore(redis, ViewKeys(0))
    await store.views.ensure_geo(registry, "test")
    updater = StandingsUpdater(store, registry)
    snapshots = []
    for tid, handle, followers in [
        ("dep-32", "gersledepartement", 15000),
        ("dep-75", "paris_maville", 900000),
        ("dep-31", "hautegaronne", 2000),
    ]:
        await updater.apply_account(tid, handle, False, version=next(OFFSETS))
        event = build_metrics_event(
            handle=handle,
            observed_at="2021-06-30T06:00:00Z",
            status="ok",
            source="csv",
            followers=followers,
            follows=300,
            media_count=1200,
            recent_posts=WORKED_POSTS,
        )
        snapshots.append(MetricsSnapshot.model_validate(event))
    await updater.apply_snapshots(snapshots)
    await redis.aclose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    asyncio.run(_seed(settings))
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_standings_shape_matches_the_contract_and_the_worked_example(client, settings):
    # Population of dep-32 in the registry is not the worked example's 200,000, so only the
    # population-free indicators are compared with the worked example's exact figures.
    body = client.get("/api/v1/standings/departements").json()
    assert body["category"] == "departements" and body["edition"] is None
    assert body["as_of"] == "2021-06-30T06:00:00Z" and body["total"] == 3
    gers = next(item for item in body["items"] if item["id"] == "dep-32")
    assert gers["code"] == "32" and gers["name"] == "Gers"
    assert gers["handle"] == "gersledepartement" and gers["link_status"] is None
    assert gers["observed_at"] == "2021-06-30T06:00:00Z" and gers["movement"] is None
    indicators = gers["indicators"]
    assert indicators["engagement"] == {"value": 0.03, "points": 54.78260869565217}
    assert indicators["activity"] == {
        "value": 0.6666666666666666,
        "posts": 20,
        "points": 66.66666666666666,
    }
    assert indicators["audience"] == {"value": 15000, "points": 54.402281476392034}
    assert indicators["ratio"] == {"value": 50.0, "points": 84.94850021680094}
    assert [item["rank"] for item in body["items"]] == [1, 2, 3]


def test_departement_filter_ranks_within_the_filter(client):
    body = client.get("/api/v1/standings/departements", params={"departement": "31"}).json()
    assert body["total"] == 1
    assert body["items"][0]["id"] == "dep-31" and body["items"][0]["rank"] == 1
    assert body["items"][0]["national_rank"] == 3


def test_pagination_is_consistent_with_the_full_list(client):
    full = [i["id"] for i in client.get("/api/v1/standings/departements").json()["items"]]
    paged = [
        client.get("/api/v1/standings/departements", params={"limit": 1, "offset": k}).json()[
            "items"
        ][0]["id"]
        for k in range(3)
    ]
    assert paged == full


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/standings/cantons", {}, 404, "unknown_category"),
        ("/api/v1/standings/departements", {"limit": 0}, 422, "invalid_parameter"),
        ("/api/v1/standings/departements", {"limit": 501}, 422, "invalid_parameter"),
        ("/api/v1/standings/departements", {"limit": "ten"}, 422, "invalid_parameter"),
        ("/api/v1/standings/departements", {"offset": -1}, 422, "invalid_parameter"),
        ("/api/v1/standings/departements", {"region": "99"}, 422, "invalid_parameter"),
        ("/api/v1/standings/departements", {"region": "'; DROP"}, 422, "invalid_parameter"),
        ("/api/v1/standings/departements", {"departement": "2C"}, 422, "invalid_parameter"),
        (
            "/api/v1/standings/departements",
            {"region": "76", "departement": "32"},
            422,
            "invalid_parameter",
        ),
        ("/api/v1/nowhere", {}, 404, "not_found"),
    ],
)
def test_bad_requests_get_clear_json_errors(client, path, params, status, code):
    response = client.get(path, params=params)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def test_etag_lets_clients_revalidate(client):
    first = client.get("/api/v1/standings/departements")
    etag = first.headers["etag"]
    again = client.get("/api/v1/standings/departements", headers={"If-None-Match": etag})
    assert again.status_code == 304
    other = client.get("/api/v1/standings/departements", params={"limit": 1})
    assert other.headers["etag"] != etag


def test_categories_list_the_eight_ids(client):
    ids = [c["id"] for c in client.get("/api/v1/categories").json()["categories"]]
    assert ids == [
        "regions",
        "departements",
        "metropoles",
        "communautes-agglomeration",
        "communautes-communes",
        "grandes-villes",
        "villes-moyennes",
        "petites-villes",
    ]


def test_readyz_is_503_and_standings_503_when_redis_is_unreachable(settings):
    from services.common.localstack import free_port

    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with TestClient(create_app(down)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        standings = client.get("/api/v1/standings/departements")
        assert standings.status_code == 503
        assert standings.json()["error"]["code"] == "redis_unavailable"


def test_metrics_endpoint_counts_requests(client):
    client.get("/api/v1/standings/departements")
    text = client.get("/metrics").text
    assert 'obs_api_requests_total{method="GET",route="/api/v1/standings/{category}"' in text
