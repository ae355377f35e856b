"""`GET /api/v1/compare?ids=…` over the story of test_api_story.py (real Redis): territories in
the order asked, duplicates dropped, six at most, unknown ids named as the territory route
names them, and every figure equal to the territory's own detail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.read.territory import TerritoryReader
from services.common.localstack import RedisServer
from services.common.settings import Settings
from services.common.territories import Territory
from tests.integration.test_api_story import DEAD, SIMULATED, Story, tell_story

COMPARED_FIELDS = (
    "id",
    "name",
    "category",
    "category_label",
    "population",
    "handle",
    "simulated",
    "link_status",
    "status",
    "as_of",
)


@pytest.fixture(scope="module")
def compare_settings(redis_server: RedisServer, tmp_path_factory) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/14",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("api-compare"),
    )


@pytest.fixture(scope="module")
def story(compare_settings: Settings) -> Story:
    return asyncio.run(tell_story(compare_settings.redis_url))


@pytest.fixture(scope="module")
def client(compare_settings: Settings, story: Story) -> Iterator[TestClient]:
    with TestClient(create_app(compare_settings)) as test_client:
        yield test_client


def compare(client: TestClient, ids: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/compare", params={"ids": ids})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_items_come_in_the_order_asked_with_duplicates_dropped(client):
    items = compare(client, "dep-75, dep-32,dep-75,com-32013,dep-32,")
    assert [item["id"] for item in items] == ["dep-75", "dep-32", "com-32013"]
    assert [item["name"] for item in items] == ["Paris", "Gers", "Auch"]


@pytest.mark.parametrize(
    "ids",
    [
        "dep-32,dep-75,dep-38,dep-52,dep-31,dep-09",  # ranked, one dead
        "dep-01,reg-76,com-32013,dep-2A",  # simulated, then territories never observed
    ],
)
def test_each_item_is_its_territory_detail_seen_side_by_side(client, ids):
    items = compare(client, ids)
    assert [item["id"] for item in items] == ids.split(",")
    for item in items:
        detail = client.get(f"/api/v1/territories/{item['id']}").json()
        assert {name: item[name] for name in COMPARED_FIELDS} == {
            name: detail[name] for name in COMPARED_FIELDS
        }, item["id"]
        national = detail["ranks"]["national"]
        assert item["rank"] == {"rank": national["rank"], "total": national["total"]}
        current = detail["current"]
        assert item["score"] == (None if current is None else current["score"])
        assert item["indicators"] == (None if current is None else current["indicators"])
        assert item["history"] == [
            {name: point[name] for name in ("edition", "rank", "total", "score", "followers")}
            for point in detail["history"]
        ]


def test_ranks_scores_statuses_and_indicators_of_mixed_categories(client):
    gers, ariege, simulated, auch = compare(client, f"dep-32,{DEAD},{min(SIMULATED)},com-32013")
    assert gers["rank"] == {"rank": 1, "total": 7} and gers["status"] == "ranked"
    assert gers["category_label"] == "Départements" and gers["link_status"] == "ok"
    assert set(gers["indicators"]) == {"engagement", "reach", "activity", "audience", "ratio"}
    assert gers["indicators"]["audience"] == {
        "value": 16000,
        "points": gers["indicators"]["audience"]["points"],
    }
    assert gers["indicators"]["activity"]["posts"] == 20
    assert 0 < gers["score"] <= 100
    assert ariege["link_status"] == "dead" and ariege["status"] == "ranked"
    assert simulated["simulated"] is True and simulated["handle"] == "sim.dep.01"
    assert auch["category"] == "villes-moyennes" and auch["status"] == "unranked"
    assert auch["rank"] == {"rank": None, "total": 0}
    assert auch["score"] is None and auch["indicators"] is None and auch["handle"] is None


def test_histories_give_rank_total_score_and_followers_per_published_edition(client):
    gers, paris = compare(client, "dep-32,dep-75")
    june = {
        item["id"]: item
        for item in client.get("/api/v1/editions/2021-06/departements").json()["items"]
    }
    assert [(h["edition"], h["rank"], h["total"], h["followers"]) for h in gers["history"]] == [
        ("2021-05", 1, 7, 15000),
        ("2021-06", 1, 7, 16000),
    ]
    assert [(h["edition"], h["rank"], h["followers"]) for h in paris["history"]] == [
        ("2021-05", 2, 900000),
        ("2021-06", 2, 910000),
    ]
    assert gers["history"][-1]["score"] == june["dep-32"]["score"]
    assert paris["history"][-1]["score"] == june["dep-75"]["score"]
    auch = compare(client, "com-32013")[0]
    assert [(h["edition"], h["rank"], h["score"]) for h in auch["history"]] == [
        ("2021-05", None, None),
        ("2021-06", None, None),
    ]


def test_six_territories_at_most_counting_each_once(client):
    six = "dep-32,dep-75,dep-38,dep-52,dep-31,dep-09"
    assert len(compare(client, six)) == 6
    assert len(compare(client, f"{six},dep-32,dep-09")) == 6  # repeats are not counted
    seven = client.get("/api/v1/compare", params={"ids": f"{six},dep-01"})
    assert seven.status_code == 422
    error = seven.json()["error"]
    assert error["code"] == "invalid_parameter" and "at most 6" in error["message"]


@pytest.mark.parametrize("ids", ["dep-99", "dep-32,nope", "dep-32, DEP-75", "com-32013,epci-1"])
def test_an_unknown_or_malformed_id_is_a_404_naming_it_as_the_territory_route_does(client, ids):
    unknown = ids.split(",")[-1].strip()
    response = client.get("/api/v1/compare", params={"ids": ids})
    assert response.status_code == 404
    assert response.json() == client.get(f"/api/v1/territories/{unknown}").json()
    assert response.json()["error"]["code"] == "unknown_territory"
    assert repr(unknown) in response.json()["error"]["message"]


@pytest.mark.parametrize("query", ["", "?ids=", "?ids=,%20,", f"?ids={'dep-32,' * 40}"])
def test_no_id_or_an_overlong_list_is_an_invalid_parameter(client, query):
    response = client.get(f"/api/v1/compare{query}")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_parameter"


def test_the_details_are_read_concurrently(client, monkeypatch):
    """Each read waits until every other one has started: read one after the other, the
    first would never see the third and the request would fail."""
    original = TerritoryReader.detail
    started: list[str] = []

    async def detail(self: TerritoryReader, territory: Territory) -> dict[str, Any]:
        started.append(territory.id)
        deadline = time.monotonic() + 5
        while len(started) < 3:
            assert time.monotonic() < deadline, f"reads not concurrent: only {started} started"
            await asyncio.sleep(0.005)
        return await original(self, territory)

    monkeypatch.setattr(TerritoryReader, "detail", detail)
    items = compare(client, "dep-52,reg-76,dep-32")
    assert [item["id"] for item in items] == ["dep-52", "reg-76", "dep-32"]
    assert sorted(started) == ["dep-32", "dep-52", "reg-76"]


def test_the_openapi_document_describes_the_comparison(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/compare"]["get"]
    assert {"200", "404", "422"} <= set(operation["responses"])
    (ids,) = operation["parameters"]
    assert ids["name"] == "ids" and ids["required"] is True
    item = spec["components"]["schemas"]["ComparedTerritory"]
    assert {"rank", "score", "indicators", "history", "link_status"} <= set(item["properties"])
    assert "/comparer" not in spec["paths"]
