"""`observatoire rebuild` while everything runs: a scorer, the publisher and the API keep
serving, snapshots keep flowing, and a reader polling the API never sees a ranking empty,
shorter or older than the one before. Afterwards the view (a new generation) equals `replay
--batch`, the old generation is gone, and the rank-change events continue without a gap."""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from services.common.clock import utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS, TOPIC_RANK_CHANGES
from services.common.events import build_account_record, build_metrics_event, build_recent_post
from services.common.kafka import make_producer
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.reference import compute_standings
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.generations import read_generations_sync
from services.common.view.keys import SHARED_KEYS
from tests.integration.test_scorer_workers import _consumed
from tests.kafka_read import read_all
from tests.services import (
    ServiceProcess,
    fresh_stack,
    isolated_settings,
    service_env,
    standings_from_redis,
    wait_for,
)

CATEGORIES = {"regions": 6, "departements": 20, "metropoles": 6, "grandes-villes": 8}
HANDLES = 30
DAYS = 16  # every account every day: nobody falls inactive, so no ranking may shrink
BEFORE_DAYS = 8  # produced before the rebuild; the rest while it runs


@dataclass
class Log:
    accounts: list[tuple[bytes, dict[str, Any]]]
    days: list[list[tuple[bytes, dict[str, Any]]]]

    def lines(self, topic: str) -> list[bytes]:
        if topic == TOPIC_ACCOUNTS:
            return [orjson.dumps(record) for _, record in self.accounts]
        return [orjson.dumps(event) for day in self.days for _, event in day]


def _log(seed: int, end: datetime) -> Log:
    rng = random.Random(seed)
    registry = load_registry()
    handles = [f"gen_{seed}_{i}" for i in range(HANDLES)]
    territories = [
        t.id
        for category, n in CATEGORIES.items()
        for t in rng.sample(registry.by_category(category), n)
    ]
    accounts = [
        (
            tid.encode(),
            build_account_record(
                territory_id=tid, handle=rng.choice(handles), changed_at=end - timedelta(days=DAYS)
            ),
        )
        for tid in territories
    ]
    start = end - timedelta(days=DAYS)
    days = []
    for day in range(DAYS):
        events = []
        for handle in handles:
            observed = start + timedelta(days=day, minutes=rng.randrange(0, 600))
            posts = [
                build_recent_post(
                    post_id=f"{handle}-{day}-{n}",
                    published_at=observed - timedelta(hours=rng.randrange(1, 300)),
                    likes=rng.randrange(0, 500),
                    comments=rng.randrange(0, 40),
                )
                for n in range(rng.randrange(1, 4))
            ]
            event = build_metrics_event(
                handle=handle,
                observed_at=observed,
                status="ok",
                source="sim",
                followers=rng.randrange(100, 80_000),
                follows=rng.randrange(1, 900),
                media_count=rng.randrange(10, 3000),
                recent_posts=posts,
            )
            events.append((f"instagram:{handle}".encode(), event))
        days.append(events)
    return Log(accounts, days)


@dataclass
class Reader:
    """Polls the standings of every category through the API; records what it saw."""

    base: str
    seen: dict[str, list[tuple[int, int, str | None]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while not self.stop.is_set():
                for category in CATEGORIES:
                    try:
                        r = client.get(f"/api/v1/standings/{category}", params={"limit": 100})
                    except httpx.HTTPError as exc:
                        self.errors.append(f"{category}: {exc!r}")
                        continue
                    if r.status_code != 200:
                        self.errors.append(f"{category}: {r.status_code} {r.text[:200]}")
                        continue
                    body = r.json()
                    observed = (body["total"], len(body["items"]), body["as_of"])
                    self.seen.setdefault(category, []).append(observed)
                time.sleep(0.02)

    def regressions(self) -> list[str]:
        found = []
        for category, seen in self.seen.items():
            for (total, items, as_of), (t2, i2, a2) in itertools.pairwise(seen):
                if t2 < total or i2 < items or (as_of and (a2 is None or a2 < as_of)):
                    found.append(f"{category}: {(total, items, as_of)} then {(t2, i2, a2)}")
        return found


@pytest.fixture
def online(broker: TansuBroker, redis_server: RedisServer, tmp_path: Path) -> Settings:
    settings = isolated_settings(
        broker,
        redis_server,
        tmp_path / "run",
        13,
        scorer_metrics_port=0,
        publisher_metrics_port=0,
        api_port=free_port(),
        rate_limit_enabled=False,
        rebuild_grace_seconds=3.0,  # the reader polls through the switch and the grace
    )
    fresh_stack(settings).close()
    return settings


def test_a_rebuild_beside_live_services_never_takes_the_rankings_down(
    online: Settings, tmp_path: Path
):
    settings = online
    log = _log(7, utcnow() - timedelta(minutes=10))
    env = service_env(settings, OBS_RATE_LIMIT_ENABLED="false", OBS_SCORER_BATCH_SIZE="100")
    procs = {
        name: ServiceProcess(["service", name], env, tmp_path / f"{name}.log").start()
        for name in ("scorer", "publisher", "api")
    }
    producer = make_producer(settings, enable_idempotence=False)
    reader = Reader(settings.api_url)
    poller = threading.Thread(target=reader.run, daemon=True)
    try:
        for key, record in log.accounts:
            producer.send(settings.topic(TOPIC_ACCOUNTS), key=key, value=orjson.dumps(record))
        for day in log.days[:BEFORE_DAYS]:
            for key, event in day:
                producer.send(settings.topic(TOPIC_METRICS), key=key, value=orjson.dumps(event))
        producer.flush()
        scorer_group = f"{settings.topic_prefix}observatoire-scorer"
        wait_for(lambda: _consumed(settings, scorer_group), timeout=90, what="the first days")
        wait_for(
            lambda: httpx.get(
                f"{settings.api_url}/api/v1/rank-changes", params={"category": "regions"}
            ).json()["events"],
            timeout=30,
            what="the publisher's first rank changes",
        )
        poller.start()
        time.sleep(0.5)

        rebuild = ServiceProcess(["rebuild"], env, tmp_path / "rebuild.log").start()
        for day in log.days[BEFORE_DAYS:]:  # the rest of the log while the rebuild runs
            for key, event in day:
                producer.send(settings.topic(TOPIC_METRICS), key=key, value=orjson.dumps(event))
            producer.flush()
            time.sleep(0.4)
        assert rebuild.wait(180) == 0, rebuild.log()[-3000:]
        wait_for(lambda: _consumed(settings, scorer_group), timeout=90, what="every day")
        time.sleep(1.0)  # the reader sees the final view too
        reader.stop.set()
        poller.join(10)

        # Readers never saw a ranking go down, empty or back in time, nor an error.
        assert reader.errors == []
        assert reader.regressions() == []
        assert all(len(seen) > 20 for seen in reader.seen.values()), {
            c: len(s) for c, s in reader.seen.items()
        }
        assert all(seen[0][0] > 0 for seen in reader.seen.values())

        # The new generation is the view, and it is exact.
        client = redis.Redis.from_url(settings.redis_url)
        pointer = read_generations_sync(client)
        assert (pointer.current, pointer.next, pointer.hold) == (1, None, None)
        expected = compute_standings(
            log.lines(TOPIC_METRICS),
            account_lines=log.lines(TOPIC_ACCOUNTS),
            now_ms=int(utcnow().timestamp() * 1000),
            bundled=(),
        )
        wait_for(
            lambda: (
                standings_from_redis(settings.redis_url) == (expected.current, expected.editions)
            ),
            timeout=30,
            what="the view equal to replay --batch",
        )
        # Generation 0 is gone: every key is generation 1's, or shared by all.
        leftovers = [
            key.decode()
            for key in client.scan_iter(count=1000)
            if not key.decode().startswith("obs:g1:") and key.decode() not in SHARED_KEYS
        ]
        assert leftovers == []
        client.close()

        # The publisher held, then went on in generation 1: seq without gap or repeat.
        assert "holding while a rebuild builds generation 1" in procs["publisher"].log()
        assert "writing generation 1 of the view" in procs["publisher"].log()
        events = [orjson.loads(r.value) for r in read_all(settings, TOPIC_RANK_CHANGES)]
        for category in CATEGORIES:
            seqs = [e["seq"] for e in events if e["category"] == category]
            assert seqs == list(range(1, len(seqs) + 1)), (category, seqs)
        served = httpx.get(
            f"{settings.api_url}/api/v1/rank-changes", params={"category": "departements"}
        ).json()
        assert served["last_seq"] == max(
            e["seq"] for e in events if e["category"] == "departements"
        )
        assert "generation 1" in rebuild.log()
    finally:
        reader.stop.set()
        producer.close()
        for proc in procs.values():
            proc.terminate()
