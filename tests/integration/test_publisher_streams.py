"""The publisher as a real process on the real broker and Redis: rank changes under a
randomized sequence of score updates (ties, inactivity, a whole Top 50 replaced), a 40-place
jump, SIGKILL and restart mid-stream, the dead-link state machine, and its /metrics.

The scorer's side is played by the test: it writes the scorer's current view in Redis (the
layout of docs/redis.md) and announces each write with an `obs.scores.v1` event, in that
order, as the scorer does.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import redis
import redis.asyncio

from services.api.read.standings import StandingsRepository
from services.common.clock import format_timestamp, to_epoch
from services.common.contracts import (
    CATEGORIES_BY_ID,
    TOPIC_ACCOUNTS,
    TOPIC_DEAD_LINKS,
    TOPIC_METRICS,
    TOPIC_RANK_CHANGES,
    TOPIC_SCORES,
)
from services.common.events import (
    RankChange,
    build_account_record,
    build_metrics_event,
    with_event_id,
)
from services.common.kafka import create_topics, make_producer
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.methodology import SnapshotSummary
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.entries import encode_entry, entry_version
from services.common.view.keys import ViewKeys
from services.common.view.wipe import drop_generation
from services.publisher.rebuild import rebuild_publisher
from services.rebuild import prepare_generation
from tests.kafka_read import read_all
from tests.services import ServiceProcess, service_env, wait_for

rk = ViewKeys(0)  # the generation a fresh view starts in

INDICATORS = {
    "engagement": {"value": 0.03, "points": 54.78260869565217},
    "reach": {"value": 0.075, "points": 69.47321609278089},
    "activity": {"value": 0.6666666666666666, "posts": 20, "points": 66.66666666666666},
    "audience": {"value": 15000, "points": 54.402281476392034},
    "ratio": {"value": 50.0, "points": 84.94850021680094},
}
START = datetime(2021, 6, 1, tzinfo=UTC)
REGISTRY = load_registry()


def publisher_process(env: dict[str, str], log_path: Path) -> ServiceProcess:
    """`observatoire service publisher` as a child process."""
    return ServiceProcess(["service", "publisher"], env, log_path)


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    publisher: ServiceProcess
    redis: redis.Redis
    tmp: Path


@pytest.fixture(scope="module")
def stack(broker: TansuBroker, redis_server: RedisServer, tmp_path_factory) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp("publisher-streams")
    settings = Settings(
        _env_file=None,
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}-",
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/6",
        publisher_metrics_port=free_port(),
        run_dir=tmp / "run",
    )
    assert all(report.ok for report in create_topics(settings))
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    env = service_env(settings, OBS_PUBLISHER_METRICS_PORT=str(settings.publisher_metrics_port))
    stack = Stack(settings, env, publisher_process(env, tmp / "publisher.log").start(), client, tmp)
    try:
        yield stack
    finally:
        stack.publisher.kill()
        client.flushdb()
        client.close()


# --- the scorer's side -----------------------------------------------------------------------


class FakeScorer:
    """Writes the scorer's current view of a category, then announces it in obs.scores.v1."""

    def __init__(self, stack: Stack, category: str) -> None:
        self.stack, self.category = stack, category
        self.ids = [t.id for t in REGISTRY.by_category(category)]
        self.producer = make_producer(stack.settings)
        self.clock = START
        self.lock = threading.Lock()

    def apply(self, scores: dict[str, float | None]) -> None:
        """Set scores (None: the territory becomes inactive), as one scorer batch."""
        with self.lock:
            self.clock += timedelta(minutes=1)
            observed_at = format_timestamp(self.clock)
            prefix = rk.view_prefix(self.category, None)
            pipe = self.stack.redis.pipeline(transaction=True)
            events = []
            for tid, score in scores.items():
                handle = f"h.{tid.replace('-', '_').lower()}"
                summary = SnapshotSummary(
                    observed_at=observed_at,
                    event_id=f"{len(events):064x}",
                    followers=1000,
                    follows=10,
                    posts=0,
                    engagement=None,
                    likes_hidden=False,
                )
                version = entry_version(to_epoch(observed_at), summary.event_id)
                if score is None:
                    pipe.zrem(rk.rank_key(prefix), tid)
                else:
                    pipe.hset(
                        rk.entry_key(prefix), tid, encode_entry(version, handle, True, summary)
                    )
                    pipe.zadd(rk.rank_key(prefix), {tid: -score})
                events.append(
                    with_event_id(
                        {
                            "schema_version": 1,
                            "id": tid,
                            "category": self.category,
                            "platform": "instagram",
                            "handle": handle,
                            "observed_at": observed_at,
                            "methodology_version": 1,
                            "status": "inactive" if score is None else "ranked",
                            "score": score,
                            "indicators": None if score is None else INDICATORS,
                        }
                    )
                )
            pipe.hset(rk.meta_key(self.category), "as_of", observed_at)
            pipe.execute()
            topic = self.stack.settings.topic(TOPIC_SCORES)
            for event in events:
                self.producer.send(topic, key=event["id"].encode(), value=orjson.dumps(event))
            self.producer.flush()

    def close(self) -> None:
        self.producer.close()


def published_size(category: str) -> int:
    return CATEGORIES_BY_ID[category].published_size or 1000


def api_top(settings: Settings, category: str) -> list[str]:
    """The first N of what `GET /api/v1/standings/{category}` shows (the API's own read)."""

    async def read() -> list[str]:
        client = redis.asyncio.Redis.from_url(settings.redis_url)
        try:
            page = await StandingsRepository(client, ViewKeys(0)).page(
                category, None, offset=0, limit=published_size(category)
            )
            return [row.territory_id for row in page.rows]
        finally:
            await client.aclose()

    return asyncio.run(read())


def recorded_state(stack: Stack, category: str) -> tuple[int, list[str]]:
    state = stack.redis.hgetall(rk.rank_changes_state_key(category))
    if not state:
        return 0, []
    return int(state[b"seq"]), orjson.loads(state[b"top"])


def wait_published(stack: Stack, category: str, timeout: float = 60) -> int:
    """Wait until the recorded published list is the API's; returns its seq."""
    return wait_for(
        lambda: (
            (state := recorded_state(stack, category))[1] == api_top(stack.settings, category)
            and state[0]
        ),
        timeout=timeout,
        what=f"{category}'s published list to catch up:\n{stack.publisher.log()[-3000:]}",
    )


def rank_change_events(settings: Settings, category: str) -> list[dict]:
    records = read_all(settings, settings.topic(TOPIC_RANK_CHANGES), timeout=20)
    return [orjson.loads(r.value) for r in records if r.key == category.encode()]


def expected_changes(old: list[str], new: list[str]) -> dict[str, tuple[int | None, int | None]]:
    """An independent reading of the contract: every territory whose rank differs."""
    before = {tid: i for i, tid in enumerate(old, start=1)}
    after = {tid: i for i, tid in enumerate(new, start=1)}
    return {
        tid: (before.get(tid), after.get(tid))
        for tid in set(before) | set(after)
        if before.get(tid) != after.get(tid)
    }


def assert_invariants(stack: Stack, category: str) -> list[dict]:
    """seq 1..n; each `changes` exactly the diff of consecutive tops; last top = the API's."""
    events = rank_change_events(stack.settings, category)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    previous: list[str] = []
    for event in events:
        RankChange.model_validate(event)
        got = {c["id"]: (c["from_rank"], c["to_rank"]) for c in event["changes"]}
        assert got == expected_changes(previous, event["top"]), f"seq {event['seq']}"
        assert len(event["changes"]) == len(got)
        for change in event["changes"]:
            kind = change["kind"]
            before, after = change["from_rank"], change["to_rank"]
            assert kind == (
                "entered"
                if before is None
                else "left"
                if after is None
                else "up"
                if after < before
                else "down"
            )
        assert event["previous_leader"] == (previous[0] if previous else None)
        assert len(event["top"]) <= published_size(category)
        previous = event["top"]
    assert previous == api_top(stack.settings, category)
    return events


# --- rank changes ----------------------------------------------------------------------------


def test_randomized_score_updates_keep_every_rank_change_invariant(stack: Stack):
    rng = random.Random(20210601)
    for category in ("departements", "regions"):
        scorer = FakeScorer(stack, category)
        ids = scorer.ids
        # A whole Top 50 (or the whole category) enters at once.
        first = ids[: published_size(category)]
        scorer.apply({tid: float(rng.randint(20, 60)) for tid in first})
        wait_published(stack, category)
        for step in range(14):
            picked = rng.sample(ids, rng.randint(1, 8))
            updates: dict[str, float | None] = {}
            for tid in picked:
                roll = rng.random()
                if roll < 0.2:
                    updates[tid] = None  # inactive: leaves the standings
                elif roll < 0.5:
                    updates[tid] = 50.0  # ties, broken by id
                else:
                    updates[tid] = round(rng.uniform(10, 90), 4)
            scorer.apply(updates)
            if step % 3 != 2:  # sometimes several batches before the publisher reads
                wait_published(stack, category)
        if category == "departements":
            # 50 territories outside the list all overtake: the whole Top 50 is replaced.
            current = set(api_top(stack.settings, category))
            outsiders = [tid for tid in ids if tid not in current][:50]
            scorer.apply({tid: 95.0 + i / 100 for i, tid in enumerate(outsiders)})
        wait_published(stack, category)
        scorer.close()
        events = assert_invariants(stack, category)
        assert len(events) >= 8
        assert len(events[0]["changes"]) == len(first)
        assert {c["kind"] for c in events[0]["changes"]} == {"entered"}
    departements = rank_change_events(stack.settings, "departements")
    last = departements[-1]["changes"]
    assert sum(c["kind"] == "entered" for c in last) == 50
    assert sum(c["kind"] == "left" for c in last) == 50


def test_a_40_place_jump_gives_one_event(stack: Stack):
    category = "communautes-agglomeration"
    scorer = FakeScorer(stack, category)
    top = scorer.ids[:50]
    scorer.apply({tid: 80.0 - i for i, tid in enumerate(top)})
    seq = wait_published(stack, category)
    jumper = top[44]
    scorer.apply({jumper: 76.5})  # from #45 to #5
    assert wait_published(stack, category) == seq + 1
    scorer.close()
    events = assert_invariants(stack, category)
    assert events[-1]["seq"] == seq + 1
    changes = events[-1]["changes"]
    up = [c for c in changes if c["kind"] == "up"]
    assert [(c["id"], c["from_rank"], c["to_rank"]) for c in up] == [(jumper, 45, 5)]
    assert up[0]["old_score"] == 36.0 and up[0]["new_score"] == 76.5
    assert sum(c["kind"] == "down" for c in changes) == 40 and len(changes) == 41
    assert events[-1]["at"] == format_timestamp(scorer.clock)


def test_sigkill_and_restart_mid_stream_skip_and_repeat_no_seq(stack: Stack):
    category = "villes-moyennes"
    scorer = FakeScorer(stack, category)
    rng = random.Random(7)
    scorer.apply({tid: float(rng.randint(1, 99)) for tid in scorer.ids[:60]})
    stop = threading.Event()
    steps = [0]

    def stream() -> None:
        while not stop.is_set() and steps[0] < 5000:  # until the test has seen enough
            picked = rng.sample(scorer.ids[:80], 3)
            scorer.apply({tid: round(rng.uniform(1, 99), 2) for tid in picked})
            steps[0] += 1
            stop.wait(0.03)

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: recorded_state(stack, category)[0] >= 5,
            timeout=60,
            what=f"a few rank changes before the kill:\n{stack.publisher.log()[-2000:]}",
        )
        stack.publisher.kill()  # SIGKILL
        killed_at = steps[0]
        wait_for(lambda: steps[0] >= killed_at + 20, timeout=30, what="updates while down")
        stack.publisher = publisher_process(stack.env, stack.publisher.log_path).start()
        seq_before = recorded_state(stack, category)[0]
        wait_for(
            lambda: recorded_state(stack, category)[0] > seq_before + 3,
            timeout=60,
            what=f"rank changes after the restart:\n{stack.publisher.log()[-3000:]}",
        )
    finally:
        stop.set()
        thread.join()
    wait_published(stack, category)
    scorer.close()
    events = assert_invariants(stack, category)
    assert len(events) > 8
    assert "recovered from its topics" in stack.publisher.log()


# --- dead links ------------------------------------------------------------------------------


def test_dead_links_follow_the_state_machine_with_errors_between_and_a_recovery(stack: Stack):
    settings = stack.settings
    producer = make_producer(settings)
    at = START - timedelta(days=5)
    shared, other = ["dep-75", "com-75056"], "dep-32"
    for tid, handle in [(shared[0], "paris"), (shared[1], "paris"), (other, "gers")]:
        record = build_account_record(territory_id=tid, handle=handle, changed_at=at)
        producer.send(settings.topic(TOPIC_ACCOUNTS), key=tid.encode(), value=orjson.dumps(record))

    def snapshot(handle: str, hours: int, status: str) -> dict:
        counts = {"followers": 10, "follows": 1, "media_count": 1} if status == "ok" else {}
        return build_metrics_event(
            handle=handle,
            observed_at=at + timedelta(hours=hours),
            status=status,  # type: ignore[arg-type]
            source="graph",
            recent_posts=[],
            **counts,
        )

    def send(*events: dict) -> None:
        for event in events:
            producer.send(
                settings.topic(TOPIC_METRICS),
                key=f"instagram:{event['handle']}".encode(),
                value=orjson.dumps(event),
            )
        producer.flush()

    def link(tid: str) -> str | None:
        value = stack.redis.hget(rk.link_status_key(REGISTRY[tid].category), tid)
        return None if value is None else value.decode()

    first_not_found = snapshot("paris", 2, "not_found")
    send(snapshot("paris", 1, "ok"), snapshot("gers", 1, "ok"), first_not_found, first_not_found)
    # gers' snapshot is on another partition: it may come in a later batch than paris'.
    wait_for(
        lambda: link(shared[0]) == "suspect" and link(other) == "ok",
        timeout=60,
        what="paris suspect and gers ok",
    )
    # The redelivered not_found counted once: still suspect, not dead.
    assert [link(t) for t in (*shared, other)] == ["suspect", "suspect", "ok"]
    send(snapshot("paris", 3, "error"), snapshot("paris", 4, "error"))
    send(snapshot("paris", 5, "not_found"))  # the second consecutive not_found: dead
    wait_for(lambda: link(shared[1]) == "dead", timeout=30, what="paris dead")
    entry = orjson.loads(stack.redis.hget(rk.DEAD_LINKS_KEY, "instagram:paris"))
    assert entry["since"] == first_not_found["observed_at"]
    assert entry["territories"] == sorted(shared)
    send(
        snapshot("paris", 6, "not_found"), snapshot("paris", 7, "error"), snapshot("paris", 8, "ok")
    )
    wait_for(lambda: link(shared[0]) == "ok", timeout=30, what="paris ok again")
    assert stack.redis.hget(rk.DEAD_LINKS_KEY, "instagram:paris") is None

    events = wait_for(
        lambda: (
            len(got := read_all(settings, settings.topic(TOPIC_DEAD_LINKS), timeout=10)) >= 2
            and got
        ),
        timeout=30,
        what="the dead and ok events",
    )
    assert len(events) == 2
    dead, alive = (orjson.loads(r.value) for r in events)
    assert (dead["status"], dead["since"], dead["territories"]) == (
        "dead",
        first_not_found["observed_at"],
        sorted(shared),
    )
    assert (alive["status"], alive["since"]) == ("ok", format_timestamp(at + timedelta(hours=8)))
    assert all(r.key == b"instagram:paris" for r in events)

    # A territory moving to another account takes that account's status.
    send(snapshot("gers", 9, "not_found"), snapshot("gers", 10, "not_found"))
    wait_for(lambda: link(other) == "dead", timeout=30, what="gers dead")
    record = build_account_record(territory_id=other, handle="paris", changed_at=at)
    producer.send(settings.topic(TOPIC_ACCOUNTS), key=other.encode(), value=orjson.dumps(record))
    producer.flush()
    wait_for(lambda: link(other) == "ok", timeout=30, what="dep-32 to follow its new account")
    gers = orjson.loads(stack.redis.hget(rk.DEAD_LINKS_KEY, "instagram:gers"))
    assert gers["territories"] == []
    producer.close()


def _transitions(client: redis.Redis, keys: ViewKeys) -> dict[bytes, list]:
    """Every account's kept link transitions in one generation, keyed as in generation 0."""
    found = {}
    pattern = keys.link_transitions_key("*", "*").rsplit(":*:*", 1)[0] + ":*"
    for key in client.scan_iter(match=pattern, count=1000):
        name = key.replace(keys.META_TAG.encode(), rk.META_TAG.encode(), 1)
        found[name] = client.zrange(key, 0, -1, withscores=True)
    return found


def test_a_rebuild_keeps_the_link_transitions_the_live_publisher_kept(stack: Stack):
    """Each account's transitions (dead, ok again, dead, with errors, redeliveries and a stale
    snapshot between), as the live publisher kept them batch after batch, equal what
    `observatoire rebuild`'s publisher part derives from the log."""
    settings = stack.settings
    producer = make_producer(settings)
    at = START - timedelta(days=3)
    territory, handle = "dep-69", "rhone.flap"
    record = build_account_record(territory_id=territory, handle=handle, changed_at=at)
    producer.send(
        settings.topic(TOPIC_ACCOUNTS), key=territory.encode(), value=orjson.dumps(record)
    )

    def snapshot(hours: int, status: str) -> dict:
        counts = {"followers": 10, "follows": 1, "media_count": 1} if status == "ok" else {}
        return build_metrics_event(
            handle=handle,
            observed_at=at + timedelta(hours=hours),
            status=status,  # type: ignore[arg-type]
            source="graph",
            recent_posts=[],
            **counts,
        )

    stale = snapshot(0, "not_found")
    batches = [
        [snapshot(1, "ok"), snapshot(2, "not_found"), snapshot(3, "not_found")],  # dead
        [snapshot(3, "not_found"), snapshot(4, "error"), snapshot(5, "ok")],  # ok again
        [snapshot(6, "not_found"), stale],
        [snapshot(7, "error"), snapshot(8, "not_found"), snapshot(9, "not_found")],  # dead
        [snapshot(10, "ok")],  # ok again
    ]
    key = rk.link_transitions_key("instagram", handle)
    for number, batch in enumerate(batches, start=1):
        for event in batch:
            producer.send(
                settings.topic(TOPIC_METRICS),
                key=f"instagram:{handle}".encode(),
                value=orjson.dumps(event),
            )
        producer.flush()
        if number in (1, 2, 4):  # let the live publisher apply these in batches of their own
            wait_for(
                lambda n=number: stack.redis.zcard(key) == {1: 1, 2: 2, 4: 3}[n],
                timeout=30,
                what=f"the transitions of batch {number}",
            )
    producer.close()
    wait_for(lambda: stack.redis.zcard(key) == 4, timeout=30, what="four transitions kept")
    kept = [orjson.loads(member) for member in stack.redis.zrange(key, 0, -1)]
    stamp = [format_timestamp(at + timedelta(hours=h)) for h in range(11)]
    assert kept == [
        {"status": "dead", "since": stamp[2], "at": stamp[3]},
        {"status": "ok", "since": stamp[5], "at": stamp[5]},
        {"status": "dead", "since": stamp[6], "at": stamp[8]},
        {"status": "ok", "since": stamp[10], "at": stamp[10]},
    ]
    live = _transitions(stack.redis, rk)
    assert rk.link_transitions_key("instagram", handle).encode() in live

    side = ViewKeys(9)  # a generation no reader reads and the live publisher never writes

    async def rebuild_beside() -> None:
        client = redis.asyncio.Redis.from_url(settings.redis_url)
        try:
            await prepare_generation(settings, client, side, REGISTRY)
            await rebuild_publisher(settings, workers=1, rk=side, registry=REGISTRY)
        finally:
            await client.aclose()

    asyncio.run(rebuild_beside())
    try:
        assert _transitions(stack.redis, side) == live
    finally:

        async def drop() -> None:
            client = redis.asyncio.Redis.from_url(settings.redis_url)
            try:
                await drop_generation(client, side)
            finally:
                await client.aclose()

        asyncio.run(drop())


def test_the_publisher_serves_its_metrics(stack: Stack):
    port = stack.settings.publisher_metrics_port
    body = wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{port}/metrics").text,
        timeout=30,
        what="the publisher's /metrics",
    )
    for name in (
        "obs_publisher_rank_changes_total",
        "obs_publisher_detection_delay_seconds",
        "obs_publisher_dead_link_events_total",
        "obs_publisher_editions_published_total",
    ):
        assert name in body
    assert "obs_publisher_rank_changes_total{kind=" in body


def test_the_publisher_refuses_to_start_when_a_topic_is_missing(settings: Settings, tmp_path):
    proc = publisher_process(service_env(settings), tmp_path / "publisher.log").start()
    assert proc.wait(60) == 2
    assert "obs.rank-changes.v1 is missing" in proc.log() and "topics create" in proc.log()
