"""Edition publication in-process against the real broker and Redis: a full ranking of more
than 1,000 entries in parts, an interrupted publication run again, automatic publication."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from redis.asyncio import Redis

from services.common.clock import to_epoch
from services.common.commands.sender import kafka_sender
from services.common.contracts import CATEGORY_IDS, TOPIC_EDITIONS
from services.common.events import Command, EditionPart, build_command
from services.common.kafka import create_topics
from services.common.methodology import SnapshotSummary, score_summary
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.entries import encode_entry, entry_version
from services.common.view.keys import ViewKeys
from services.publisher.core import Publisher
from tests.kafka_read import read_all
from tests.signing import COMMAND_KEY, COMMAND_KEYS
from tests.witnesses import watermark_set

rk = ViewKeys(0)  # the generation a fresh view starts in

REGISTRY = load_registry()
CATEGORY = "petites-villes"


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    assert all(report.ok for report in create_topics(settings))
    client = Redis.from_url(settings.redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def edition_view(redis: Redis, month: str, count: int) -> None:
    """The scorer's view of a month: `count` petites villes, as the scorer stores them."""
    prefix = rk.view_prefix(CATEGORY, month)
    observed_at = f"{month}-15T06:00:00Z"
    ranks: dict[str, float] = {}
    entries: dict[str, bytes] = {}
    for i, territory in enumerate(REGISTRY.by_category(CATEGORY)[:count]):
        summary = SnapshotSummary(
            observed_at=observed_at,
            event_id=f"{i:064x}",
            followers=100 + 7 * i,
            follows=50,
            posts=0,
            engagement=None,
            likes_hidden=False,
        )
        version = entry_version(to_epoch(observed_at), summary.event_id)
        entries[territory.id] = encode_entry(version, f"h.{i}", True, summary)
        ranks[territory.id] = -score_summary(summary, territory.population).score
    await redis.hset(rk.entry_key(prefix), mapping=entries)  # type: ignore[arg-type]
    await redis.zadd(rk.rank_key(prefix), ranks)
    await redis.sadd(rk.edition_months_key(CATEGORY), month)


def command(month: str) -> Command:
    return Command.model_validate(
        build_command(
            command="publish_edition",
            args={"edition": month},
            requested_by="api",
            requested_at="2021-07-10T08:00:00Z",
            key=COMMAND_KEY,
        )
    )


async def test_a_full_ranking_of_over_1000_entries_is_published_in_parts(settings, redis):
    await edition_view(redis, "2021-05", 1203)
    await redis.zadd(rk.WATERMARK_KEY, watermark_set(to_epoch("2021-06-05T00:00:00Z")))
    async with kafka_sender(settings) as send:
        publisher = Publisher(
            redis, ViewKeys(0), REGISTRY, send, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await publisher.load()
        # An interrupted attempt had frozen the month: running again keeps its published_at.
        await publisher.store.editions.freeze("2021-05", "2021-06-02T08:00:00Z")
        result = await publisher.commands.execute(command("2021-05"))
        assert result is not None and result["status"] == "done", result
        assert result["reason"].startswith("published 2021-05 at 2021-06-02T08:00:00Z")
        assert await publisher.commands.execute(command("2021-05")) is None  # once only
    records = read_all(settings, settings.topic(TOPIC_EDITIONS), timeout=10)
    parts = [orjson.loads(r.value) for r in records]
    for part in parts:
        EditionPart.model_validate(part)
        assert part["published_at"] == "2021-06-02T08:00:00Z"
    ours = sorted((p for p in parts if p["category"] == CATEGORY), key=lambda p: p["part"])
    assert [(p["part"], p["parts"], len(p["standings"])) for p in ours] == [
        (1, 2, 1000),
        (2, 2, 203),
    ]
    ranks = [s["rank"] for p in ours for s in p["standings"]]
    assert ranks == list(range(1, 1204))
    scores = [s["score"] for p in ours for s in p["standings"]]
    assert scores == sorted(scores, reverse=True)
    assert {p["category"] for p in parts} == set(CATEGORY_IDS)
    assert await redis.zcard(rk.published_rank_key(CATEGORY, "2021-05")) == 1203
    meta = await redis.hgetall(rk.published_meta_key(CATEGORY, "2021-05"))
    assert meta[b"parts"] == b"2" and meta[b"total"] == b"1203"
    # The scorer's frozen view is dropped once the edition is recorded; the marker stays.
    view = rk.view_prefix(CATEGORY, "2021-05")
    assert not await redis.exists(rk.rank_key(view), rk.entry_key(view))
    assert not await redis.sismember(rk.edition_months_key(CATEGORY), "2021-05")
    assert await redis.get(rk.edition_frozen_key(CATEGORY, "2021-05")) is not None


async def test_automatic_publication_requests_each_due_month_once(settings, redis):
    await edition_view(redis, "2021-05", 3)
    await edition_view(redis, "2021-06", 2)
    await redis.zadd(rk.WATERMARK_KEY, watermark_set(to_epoch("2021-07-02T21:59:59Z")))
    async with kafka_sender(settings) as send:
        publisher = Publisher(
            redis, ViewKeys(0), REGISTRY, send, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await publisher.load()
        first = await publisher.commands.due_auto_command(delay_hours=48)
        assert first is not None and first["args"] == {"edition": "2021-05"}
        assert first["requested_by"] == "auto"
        assert first["requested_at"] == "2021-06-02T22:00:00Z"  # May's end + 48 h, event time
        assert await publisher.commands.due_auto_command(delay_hours=48) is None  # asked once
        await publisher.commands.execute(Command.model_validate(first))
        assert await publisher.commands.due_auto_command(delay_hours=48) is None  # June not due
        await redis.zadd(rk.WATERMARK_KEY, watermark_set(to_epoch("2021-07-02T22:00:00Z")))
        second = await publisher.commands.due_auto_command(delay_hours=48)
        assert second is not None and second["args"] == {"edition": "2021-06"}
        result = await publisher.commands.execute(Command.model_validate(second))
    assert result is not None and result["status"] == "done"
    assert set(await redis.hkeys(rk.EDITIONS_KEY)) == {b"2021-05", b"2021-06"}
    june = await redis.zrange(rk.latest_published_rank_key(CATEGORY), 0, -1)
    assert len(june) == 2


async def test_a_publisher_starting_drops_views_left_by_an_interrupted_publication(settings, redis):
    """Recorded as published, yet its frozen view still there (a crash right after recording
    the edition): the next start drops the view, keeps the marker and an unpublished month."""
    await edition_view(redis, "2021-05", 3)
    await edition_view(redis, "2021-06", 3)
    await redis.set(rk.edition_frozen_key(CATEGORY, "2021-05"), "2021-06-02T08:00:00Z")
    await redis.hset(rk.EDITIONS_KEY, "2021-05", orjson.dumps({"published_at": "x"}))
    async with kafka_sender(settings) as send:
        await Publisher(
            redis, ViewKeys(0), REGISTRY, send, grace_hours=24, command_keys=COMMAND_KEYS
        ).load()
    may, june = rk.view_prefix(CATEGORY, "2021-05"), rk.view_prefix(CATEGORY, "2021-06")
    assert not await redis.exists(rk.rank_key(may), rk.entry_key(may))
    assert await redis.get(rk.edition_frozen_key(CATEGORY, "2021-05")) is not None
    assert await redis.zcard(rk.rank_key(june)) == 3
