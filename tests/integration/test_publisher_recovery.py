"""The exact crash windows of rank-change publication, against the real broker and Redis: an
event produced but not recorded (SIGKILL between the two), an event written ahead but never
produced, and a Redis that lost everything. The topic is the truth: `seq` continues from its
tail, never skipping or repeating a number."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from redis.asyncio import Redis

from services.common.commands.sender import Delivered, kafka_sender
from services.common.contracts import TOPIC_RANK_CHANGES
from services.common.kafka import create_topics
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from services.publisher.core import Publisher
from services.publisher.recovery import restore_from_topics
from tests.kafka_read import read_all
from tests.signing import COMMAND_KEYS

rk = ViewKeys(0)  # the generation a fresh view starts in

CATEGORY = "departements"


class SimulatedCrash(Exception):
    """Stands for the process dying at this point."""


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    assert all(report.ok for report in create_topics(settings))
    client = Redis.from_url(settings.redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def standings(redis: Redis, scores: dict[str, float], as_of: str) -> None:
    """The scorer's current view of the category (only what the publisher reads)."""
    prefix = rk.view_prefix(CATEGORY, None)
    await redis.delete(rk.rank_key(prefix))
    await redis.zadd(rk.rank_key(prefix), {tid: -score for tid, score in scores.items()})
    await redis.hset(rk.meta_key(CATEGORY), "as_of", as_of)


def events_in_topic(settings: Settings) -> list[dict]:
    records = read_all(settings, settings.topic(TOPIC_RANK_CHANGES), timeout=10)
    return [orjson.loads(r.value) for r in records if r.key == CATEGORY.encode()]


async def test_an_event_produced_but_not_recorded_is_taken_from_the_topic(settings, redis):
    registry = load_registry()
    async with kafka_sender(settings) as send:
        first = Publisher(
            redis, ViewKeys(0), registry, send, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await first.load()
        await standings(redis, {"dep-01": 50.0, "dep-02": 40.0}, "2021-06-01T00:00:00Z")
        assert (await first.ranks.refresh(CATEGORY))["seq"] == 1
        await standings(
            redis, {"dep-01": 50.0, "dep-02": 60.0, "dep-03": 55.0}, "2021-06-01T01:00:00Z"
        )

        async def crash(*args: object, **kwargs: object) -> None:
            raise SimulatedCrash

        first.store.rank_changes.commit = crash  # type: ignore[method-assign]
        with pytest.raises(SimulatedCrash):
            await first.ranks.refresh(CATEGORY)
        assert (await first.store.rank_changes.state(CATEGORY)).seq == 1  # Redis lags the topic
        assert [e["seq"] for e in events_in_topic(settings)] == [1, 2]

        report = await restore_from_topics(settings, redis, ViewKeys(0))  # what a restart does
        assert report.recovered_events == 1 and report.seq[CATEGORY] == 2
        second = Publisher(
            redis, ViewKeys(0), registry, send, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await second.load()
        state = second.ranks.state(CATEGORY)
        assert (state.seq, state.top) == (2, ["dep-02", "dep-03", "dep-01"])
        # The write-ahead copy gave back every score, not only the changed ones.
        assert state.scores == {"dep-02": 60.0, "dep-03": 55.0, "dep-01": 50.0}
        assert await redis.get(rk.rank_changes_pending_key(CATEGORY)) is None

        await standings(
            redis, {"dep-01": 70.0, "dep-02": 60.0, "dep-03": 55.0}, "2021-06-01T02:00:00Z"
        )
        third = await second.ranks.refresh(CATEGORY)
    assert third is not None and third["seq"] == 3
    changes = {c["id"]: c for c in third["changes"]}
    assert (changes["dep-01"]["from_rank"], changes["dep-01"]["to_rank"]) == (3, 1)
    assert changes["dep-01"]["old_score"] == 50.0 and changes["dep-01"]["new_score"] == 70.0
    assert [e["seq"] for e in events_in_topic(settings)] == [1, 2, 3]
    recent = await second.store.rank_changes.recent(CATEGORY)
    assert [orjson.loads(raw)["seq"] for raw in recent] == [1, 2, 3]


async def test_an_event_written_ahead_but_never_produced_leaves_no_gap(settings, redis):
    registry = load_registry()
    async with kafka_sender(settings) as send:
        publisher = Publisher(
            redis, ViewKeys(0), registry, send, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await publisher.load()
        await standings(redis, {"dep-01": 50.0}, "2021-06-01T00:00:00Z")
        await publisher.ranks.refresh(CATEGORY)

        async def broker_down(topic: str, key: bytes, value: bytes) -> Delivered:
            raise SimulatedCrash

        publisher.ranks.send = broker_down
        await standings(redis, {"dep-01": 50.0, "dep-02": 60.0}, "2021-06-01T01:00:00Z")
        with pytest.raises(SimulatedCrash):
            await publisher.ranks.refresh(CATEGORY)
        assert await redis.get(rk.rank_changes_pending_key(CATEGORY)) is not None

        report = await restore_from_topics(settings, redis, ViewKeys(0))
        assert report.seq[CATEGORY] == 1
        assert await redis.get(rk.rank_changes_pending_key(CATEGORY)) is None
        restarted = Publisher(
            redis, ViewKeys(0), registry, send, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await restarted.load()
        event = await restarted.ranks.refresh(CATEGORY)
    assert event is not None and event["seq"] == 2
    assert [e["seq"] for e in events_in_topic(settings)] == [1, 2]


async def test_a_redis_that_lost_everything_continues_the_seq_of_the_topic(settings, redis):
    registry = load_registry()
    async with kafka_sender(settings) as send:
        publisher = Publisher(
            redis, ViewKeys(0), registry, send, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await publisher.load()
        for hour, leader in enumerate(["dep-01", "dep-02", "dep-03"]):
            scores = {"dep-01": 10.0, "dep-02": 20.0, "dep-03": 30.0, leader: 90.0}
            await standings(redis, scores, f"2021-06-01T0{hour}:00:00Z")
            await publisher.ranks.refresh(CATEGORY)
        await redis.flushdb()
        report = await restore_from_topics(settings, redis, ViewKeys(0))
        assert report.seq[CATEGORY] == 3
        restarted = Publisher(
            redis, ViewKeys(0), registry, send, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await restarted.load()
        assert restarted.ranks.state(CATEGORY).top == ["dep-03", "dep-02", "dep-01"]
        await standings(
            redis, {"dep-01": 95.0, "dep-02": 20.0, "dep-03": 30.0}, "2021-06-01T04:00:00Z"
        )
        event = await restarted.ranks.refresh(CATEGORY)
    assert event is not None and event["seq"] == 4
    assert [e["seq"] for e in events_in_topic(settings)] == [1, 2, 3, 4]
