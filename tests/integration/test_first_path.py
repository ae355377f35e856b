"""The first end-to-end path with real processes: simulator → obs.metrics.v1 → faust scorer →
Redis → API, plus poison records to the dead-letter topic and a clean stop on SIGTERM."""

from __future__ import annotations

import math
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from services.cli.topics import seed_bundled_accounts
from services.common.clock import format_timestamp, utcnow
from services.common.events import build_metrics_event
from services.common.kafka import create_topics, make_producer
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.generations import read_generations_sync
from services.common.view.keys import ViewKeys
from tests.kafka_read import read_all
from tests.services import ServiceProcess, service_env, wait_for

rk = ViewKeys(0)  # the generation a fresh view starts in


@pytest.fixture(scope="module")
def stack(broker: TansuBroker, redis_server: RedisServer, tmp_path_factory) -> Iterator[dict]:
    """Topics, a scorer and an API on the session broker/Redis, shared by this module."""
    tmp: Path = tmp_path_factory.mktemp("first-path")
    settings = Settings(
        _env_file=None,
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}-",
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/3",
        api_port=free_port(),
        scorer_metrics_port=free_port(),
        collector_metrics_port=free_port(),
        run_dir=tmp / "run",
        spool_dir=tmp / "spool",
        rebuild_grace_seconds=0,
    )
    assert all(report.ok for report in create_topics(settings))
    # Database 3 is shared with other modules' stacks (tests/e2e/test_prometheus_scrape.py):
    # start from an empty one.
    with redis.Redis.from_url(settings.redis_url) as client:
        client.flushdb()
    seeded = seed_bundled_accounts(settings)
    env = service_env(
        settings,
        OBS_SIM_START=format_timestamp(utcnow() - timedelta(days=3)),
        OBS_SIM_STEP_HOURS="24",
    )
    scorer = ServiceProcess(["service", "scorer"], env, tmp / "scorer.log").start()
    api = ServiceProcess(["service", "api"], env, tmp / "api.log").start()
    procs = {"scorer": scorer, "api": api}
    try:
        wait_for(
            lambda: httpx.get(f"{settings.api_url}/readyz").status_code == 200,
            timeout=30,
            what=f"the API to be ready:\n{api.log()[-2000:]}",
        )
        yield {"settings": settings, "env": env, "tmp": tmp, "procs": procs, "seeded": seeded}
    finally:
        for proc in procs.values():
            proc.kill()


def _standings(settings: Settings, category: str, **params: object) -> dict:
    response = httpx.get(f"{settings.api_url}/api/v1/standings/{category}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# An independent reading of methodology v1's points curves (ARCHITECTURE.md), written again
# here on purpose: the test must not trust the code it checks.
def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


def _expected_points(item: dict) -> dict[str, float]:
    ind = item["indicators"]
    n = ind["activity"]["posts"]
    e = ind["engagement"]["value"]
    engagement = 0.0 if e is None else 100 * min(1.0, ((n * e + 0.03) / (n + 3)) / 0.05)
    r = ind["reach"]["value"]
    reach = 0.0 if not r else 100 * _clamp(math.log10(r / 0.001) / math.log10(500))
    activity = 100 * min(1.0, (n / 30) / 1.0)
    f = ind["audience"]["value"]
    audience = 0.0 if f == 0 else 100 * _clamp(math.log10(f / 100) / 4)
    q = ind["ratio"]["value"]
    ratio = 0.0 if q == 0 else 100 * _clamp(math.log10(q) / 2)
    return {
        "engagement": engagement,
        "reach": reach,
        "activity": activity,
        "audience": audience,
        "ratio": ratio,
    }


def test_simulated_departements_are_ranked_live_by_methodology_v1(stack):
    settings: Settings = stack["settings"]
    assert stack["seeded"] == 18  # the seed article's accounts, dep-74's malformed one left out
    collector = ServiceProcess(
        ["service", "collector", "--source", "sim", "--once"],
        stack["env"],
        stack["tmp"] / "collector.log",
    ).start()
    assert collector.wait(120) == 0, collector.log()[-3000:]

    registry = load_registry()
    real = 9  # départements of the article with a valid handle: not simulated, no data here
    expected_total = len(registry.by_category("departements")) - real
    body = wait_for(
        lambda: (
            (b := _standings(settings, "departements", limit=10))["total"] == expected_total and b
        ),
        timeout=60,
        what="every simulated département to be ranked",
    )
    items = body["items"]
    assert [item["rank"] for item in items] == list(range(1, 11))
    assert [item["national_rank"] for item in items] == list(range(1, 11))
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    assert body["as_of"] is not None and body["edition"] is None
    for item in items:
        assert item["simulated"] is True and item["handle"].startswith("sim.dep.")
        assert item["link_status"] is None and item["movement"] is None
        assert item["name"] == registry[item["id"]].name
        expected = _expected_points(item)
        for name, points in expected.items():
            assert item["indicators"][name]["points"] == pytest.approx(points, abs=1e-9), name
        reach = item["indicators"]["reach"]["value"]
        assert reach == item["indicators"]["audience"]["value"] / registry[item["id"]].population
        weighted = (
            5 * expected["engagement"]
            + 4 * expected["reach"]
            + 3 * expected["activity"]
            + 2 * expected["audience"]
            + expected["ratio"]
        ) / 15
        assert item["score"] == round(weighted, 4)

    # Every category the simulator covers by default is ranked too.
    for category in ("regions", "metropoles", "grandes-villes"):
        assert _standings(settings, category)["total"] > 0
    # A région filter: rank within the filter, national_rank within the category.
    occitanie = _standings(settings, "departements", region="76", limit=50)
    assert [i["rank"] for i in occitanie["items"]] == list(range(1, occitanie["total"] + 1))
    ranks = [i["national_rank"] for i in occitanie["items"]]
    assert ranks == sorted(ranks) and all(
        registry[i["id"]].regions == ("76",) for i in occitanie["items"]
    )


def test_a_snapshot_shows_in_the_api_a_fraction_of_a_second_after_it_is_produced(stack):
    """Freshness on the local broker: an idle scorer's fetches are answered by Tansu only at
    their max wait, so the profile's short wait (not faust's 1.5 s) decides how soon a
    snapshot is applied; one probe at a time, each for another ranked département."""
    settings: Settings = stack["settings"]
    items = wait_for(
        lambda: _standings(settings, "departements", limit=8)["items"],
        timeout=60,
        what="ranked départements",
    )
    producer = make_producer(settings)
    latencies = []
    try:
        for n, item in enumerate(items):
            followers = 7_000_000 + n
            event = build_metrics_event(
                handle=item["handle"],
                observed_at=format_timestamp(utcnow()),
                status="ok",
                source="sim",
                followers=followers,
                follows=10,
                media_count=1,
                recent_posts=[],
            )
            key = f"instagram:{item['handle']}".encode()
            producer.send(settings.topic("obs.metrics.v1"), key=key, value=orjson.dumps(event))
            producer.flush()
            sent = time.perf_counter()
            url = f"{settings.api_url}/api/v1/territories/{item['id']}"
            wait_for(
                lambda url=url, followers=followers: (
                    httpx.get(url).json()["current"]["followers"] == followers
                ),
                timeout=10,
                interval=0.01,
                what=f"probe {n} in the API",
            )
            latencies.append(time.perf_counter() - sent)
            time.sleep(0.3)  # the scorer idle again: its next fetch is a waiting one
    finally:
        producer.close()
    latencies.sort()
    assert statistics.median(latencies) < 0.5, latencies


def test_invalid_records_go_to_the_dead_letter_topic_and_good_ones_are_applied(stack):
    settings: Settings = stack["settings"]
    from services.common.events import build_metrics_event, with_event_id

    good = build_metrics_event(
        handle="gersledepartement",
        observed_at=format_timestamp(utcnow() - timedelta(minutes=1)),
        status="ok",
        source="csv",
        followers=15000,
        follows=300,
        media_count=1200,
        recent_posts=[],
    )
    poison = [
        b"{not json",
        b'{"schema_version": 1}',
        orjson.dumps(with_event_id({**good, "followers": -5})),
        orjson.dumps(with_event_id({**good, "handle": "Gers LeDepartement"})),
        orjson.dumps(with_event_id({**good, "schema_version": 2})),
        orjson.dumps(with_event_id({**good, "observed_at": "2099-01-01T00:00:00Z"})),
        orjson.dumps({**good, "followers": 16000}),  # content changed, event_id not
        b'{"pad": "' + b"x" * (300 * 1024) + b'"}',
    ]
    producer = make_producer(settings, max_request_size=2 * 1024 * 1024)
    topic = settings.topic("obs.metrics.v1")
    for payload in poison[:3]:
        producer.send(topic, key=b"instagram:bad", value=payload)
    producer.send(topic, key=b"instagram:gersledepartement", value=orjson.dumps(good))
    for payload in poison[3:]:
        producer.send(topic, key=b"instagram:bad", value=payload)
    producer.flush()
    producer.close()

    gers = wait_for(
        lambda: next(
            (
                i
                for i in _standings(settings, "departements", limit=500)["items"]
                if i["id"] == "dep-32"
            ),
            None,
        ),
        timeout=30,
        what="the good snapshot between poison records to be applied",
    )
    assert gers["handle"] == "gersledepartement" and gers["simulated"] is False
    dlq = wait_for(
        lambda: (
            (records := read_all(settings, settings.topic("obs.metrics.v1.dlq"), timeout=10))
            and len(records) >= len(poison)
            and records
        ),
        timeout=30,
        what="every poison record in the dead-letter topic",
    )
    reasons = sorted(orjson.loads(r.value)["reason"] for r in dlq)
    assert reasons == sorted(
        [
            "invalid_json",
            "schema",
            "schema",
            "schema",
            "unsupported_schema_version",
            "future",
            "event_id_mismatch",
            "oversized",
        ]
    )
    # The future record did not move the watermark.
    assert _standings(settings, "departements")["as_of"] < "2099"


def _scorer_view(redis_url: str) -> dict[str, object]:
    """Every standings view, entry and version the scorer owns, as comparable data."""
    import redis as redis_sync

    from services.common.contracts import CATEGORY_IDS

    client = redis_sync.Redis.from_url(redis_url)
    rk = read_generations_sync(client).keys  # the generation readers read
    view: dict[str, object] = {"watermark": client.zrange(rk.WATERMARK_KEY, 0, -1, withscores=True)}
    for category in CATEGORY_IDS:
        months = sorted(m.decode() for m in client.smembers(rk.edition_months_key(category)))
        view[f"{category}:months"] = months
        view[f"{category}:as_of"] = client.hget(rk.meta_key(category), "as_of")
        for edition in [None, *months]:
            prefix = rk.view_prefix(category, edition)
            name = prefix.removeprefix(rk.root)
            view[f"{name}:rank"] = client.zrange(rk.rank_key(prefix), 0, -1, withscores=True)
            view[f"{name}:entry"] = client.hgetall(rk.entry_key(prefix))
    client.close()
    return view


def test_rebuild_from_the_topics_restores_exactly_the_live_view(stack):
    settings: Settings = stack["settings"]
    before = _scorer_view(settings.redis_url)
    assert before["watermark"] and before["departements:months"]
    # One process, then the default two sharing the metrics partitions: the same view.
    for args in (["rebuild", "--workers", "1"], ["rebuild"]):
        log = stack["tmp"] / f"rebuild-{len(args)}.log"
        rebuild = ServiceProcess(args, stack["env"], log).start()
        assert rebuild.wait(120) == 0, rebuild.log()[-3000:]
        assert "readers read generation" in rebuild.log()
        after = _scorer_view(settings.redis_url)
        assert after.keys() == before.keys()
        for key in before:
            assert after[key] == before[key], (args, key)


def test_scorer_and_api_stop_within_10_seconds_of_sigterm_and_say_so(stack):
    for name, proc in stack["procs"].items():
        took = proc.terminate(timeout=10)
        assert took < 10, name
        assert "stopped cleanly" in proc.log(), f"{name} log:\n{proc.log()[-2000:]}"
