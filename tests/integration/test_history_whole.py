"""The daily history written whole (a rebuild: one plan holding every day of every account,
into a fresh generation) stores, against a real redis-server, exactly the bytes that the same
snapshots store when they arrive one at a time: the accounts' points, the territories'
histories, the rank indexes and their meta; and so do a second bulk write onto the stored
keys and a late snapshot."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from services.common.events import MetricsSnapshot
from services.common.history import (
    Point,
    Window,
    day_number,
    decode_points,
    encode_point,
    fold_stored,
    index_entry,
    ordinals,
    split_series,
)
from services.common.localstack import RedisServer
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore
from services.scorer.store import history as history_store
from services.scorer.store.history import SeriesWrite
from tests.integration.test_daily_history import snap
from tests.witnesses import corroborated

rk = ViewKeys(0)
REGISTRY = load_registry()
PARIS = ZoneInfo("Europe/Paris")
OFFSETS = itertools.count()
# Paris the département and Paris the commune share one account; three categories.
ACCOUNTS = {
    "dep-01": "ain01",
    "dep-02": "aisne02",
    "dep-32": "gers32",
    "dep-75": "paris",
    "com-75056": "paris",
    "com-31555": "toulouse",
    "reg-76": "occitanie",
}
NEWCOMER = ("com-69123", "lyon")  # its account first observed in the second write
START = datetime(2026, 3, 20, tzinfo=PARIS)  # the days cross the change to summer time
ORDINALS = ordinals([t.id for t in REGISTRY.by_category("departements")])


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def days_of_snapshots(rng: random.Random, handles: list[str], days: range) -> list[MetricsSnapshot]:
    """0-2 snapshots a day per account at a day's first, last or any second, and now and
    then two of one second with the same followers and posts (only their likes differ: the
    account's copy and the territories' tell them apart by other bytes)."""
    out = []
    for day in days:
        for handle in handles:
            for _ in range(rng.randint(0, 2)):
                second = rng.choice([0, 1, rng.randint(0, 86_399), 86_399])
                moment = START + timedelta(days=day, seconds=second)
                followers, posts = rng.randint(500, 90_000), rng.randint(0, 6)
                out.append(snap(handle, moment, followers, posts, rng.randint(5, 400)))
                if posts and rng.random() < 0.2:
                    out.append(snap(handle, moment, followers, posts, rng.randint(5, 400)))
    return out


async def mapped(redis: Redis, accounts: dict[str, str]) -> StandingsUpdater:
    store = ScorerStore(redis, rk)
    await store.views.ensure_geo(REGISTRY, "test")
    updater = StandingsUpdater(store, REGISTRY)
    await updater.apply_accounts(
        [(tid, handle, False, next(OFFSETS)) for tid, handle in accounts.items()]
    )
    return updater


Stored = dict[bytes, bytes | dict[bytes, bytes]]


def fields(state: Stored, key: str) -> dict[bytes, bytes]:
    """A hash's fields in a `stored` state."""
    value = state[key.encode()]
    assert isinstance(value, dict)
    return value


async def stored(redis: Redis) -> Stored:
    """Every key of the daily history (accounts' points, histories, indexes, meta), with its
    value: a string's bytes, a hash's fields."""
    out: Stored = {}
    async for key in redis.scan_iter(match="*hist*"):
        kind = await redis.type(key)
        value = await (redis.get(key) if kind == b"string" else redis.hgetall(key))
        out[key] = cast(bytes | dict[bytes, bytes], value)
    return out


@pytest.mark.parametrize("script_points", [history_store.SCRIPT_POINTS, 40])
async def test_a_whole_write_stores_the_bytes_of_the_same_snapshots_one_at_a_time(
    redis, monkeypatch, script_points
):
    """With 40 points a call, a bulk write is many calls merging into indexes already held."""
    monkeypatch.setattr(history_store, "SCRIPT_POINTS", script_points)
    rng = random.Random(script_points)
    handles = sorted(set(ACCOUNTS.values()))
    first = days_of_snapshots(rng, handles, range(0, 28))
    second = days_of_snapshots(rng, [*handles, NEWCOMER[1]], range(20, 41))
    day = START + timedelta(days=5)
    late = [
        snap("gers32", day + timedelta(seconds=86_399), 5_000_000, 6, 900),  # moves the 5th
        snap("aisne02", day, 9_000_000, 6, 900),  # the day's first second: changes nothing
    ]
    accounts = ACCOUNTS | {NEWCOMER[0]: NEWCOMER[1]}

    updater = await mapped(redis, accounts)
    whole = []
    for snapshots in (first, second, late):
        await updater.apply_snapshots(corroborated(snapshots))  # each in one plan
        whole.append(await stored(redis))

    await redis.flushdb()
    updater = await mapped(redis, accounts)
    one_at_a_time = []
    for snapshots in (first, second, late):
        for snapshot in rng.sample(snapshots, len(snapshots)):  # late ones too, any order
            await updater.apply_snapshots(corroborated([snapshot]))
        one_at_a_time.append(await stored(redis))

    assert whole == one_at_a_time
    before, after = whole[1], whole[2]
    changed = {key for key in after if after[key] != before[key]}
    assert rk.history_day_key("departements", day_number(day.date())).encode() in changed
    assert rk.history_key("departements").encode() in changed
    assert any(b":hist:{instagram:" in key for key in changed)  # the account's points
    series = split_series(fields(after, rk.history_key("grandes-villes"))[b"com-69123"])
    assert series[0].endswith(b"lyon") and series[1]  # the newcomer, whole in the second
    assert len(whole[0]) > 60  # accounts, three categories' histories, days and weeks


async def test_folded_weeks_written_whole_are_the_weeks_folded_day_after_day(redis):
    """130 days: the weeks before the window's daily days are folded into their last point,
    written whole as day after day (only `low_day`, the oldest day index ever written, tells
    the two apart: day by day, indexes of days that were daily then were written and
    trimmed). Ain's last point, a Monday's, comes after three days without any, in which the
    window moved (on the Saturday): its stored days that became a weekly point are folded
    before the Monday's point joins them."""
    rng = random.Random(3)
    last = 129
    assert (START + timedelta(days=last)).isoweekday() == 1
    by_day = [
        [
            snap(handle, START + timedelta(days=day, hours=rng.randint(0, 23)), 1_000 + day, 3, 40)
            for handle in ("ain01", "aisne02", "gers32")
            if handle != "ain01" or not last - 3 <= day < last
        ]
        for day in range(last + 1)
    ]
    accounts = {"dep-01": "ain01", "dep-02": "aisne02", "dep-32": "gers32"}
    updater = await mapped(redis, accounts)
    await updater.apply_snapshots(corroborated([s for day in by_day for s in day]))
    whole = await stored(redis)

    await redis.flushdb()
    updater = await mapped(redis, accounts)
    for snapshots in by_day:
        await updater.apply_snapshots(corroborated(snapshots))
    day_by_day = await stored(redis)

    meta = rk.history_meta_key("departements")
    low_whole = fields(whole, meta).pop(b"low_day")
    low_daily = fields(day_by_day, meta).pop(b"low_day")
    assert whole == day_by_day
    assert int(low_daily) == day_number(START.date()) < int(low_whole)
    assert int(low_whole) == int(fields(whole, meta)[b"first_day"])
    weekly = len(split_series(fields(whole, rk.history_key("departements"))[b"dep-01"])[1])
    assert weekly // 13 < 100  # folded


def series_of(tid: str, link: bytes, days: range, window: Window, seed: int) -> SeriesWrite:
    """A territory's points of some days, folded under `window`, carrying `link`."""
    rng = random.Random(seed)
    points = [
        encode_point(Point(day, rng.randint(0, 86_399), rng.randint(0, 9999) / 100, 9, 1))
        for day in days
    ]
    return SeriesWrite(tid, ORDINALS[tid], link, fold_stored(points, window))


async def link_of(redis: Redis, tid: str) -> bytes:
    held = await redis.hget(rk.category_accounts_key("departements"), tid)
    assert isinstance(held, bytes)
    return held[8:]  # after the record's version


async def test_a_territory_whose_link_is_not_its_points_stays_out_of_a_whole_write(redis):
    """In one call of territories written whole, the one whose points carry another link
    than its own writes nothing: neither its history nor its entries in any index."""
    await mapped(redis, {"dep-01": "ain01", "dep-02": "aisne02", "dep-32": "gers32"})
    store = ScorerStore(redis, rk).history
    window = Window.of(20_540)
    days = range(20_500, 20_540)
    good = [
        series_of(t, await link_of(redis, t), days, window, i)
        for i, t in enumerate(["dep-01", "dep-32"])
    ]
    wrong = series_of("dep-02", b"\x00someone.else", days, window, 7)
    assert await store.apply_series("departements", [good[0], wrong, good[1]], window) == 80
    with_wrong = await stored(redis)
    assert set(fields(with_wrong, rk.history_key("departements"))) == {b"dep-01", b"dep-32"}

    def entry_on(w: SeriesWrite, day: int) -> bytes:
        point = next(p for p in decode_points(b"".join(w.points)) if p.day == day)
        return index_entry(point.score, w.ordinal)

    day_key = rk.history_day_key("departements", 20_510)
    assert await redis.get(day_key) == b"".join(sorted(entry_on(w, 20_510) for w in good))
    # The same two alone write the same bytes.
    await redis.delete(*[key for key in with_wrong if b"{cat:departements}:hist" in key])
    assert await store.apply_series("departements", good, window) == 80
    assert await stored(redis) == with_wrong


async def test_a_writer_with_an_older_window_writes_under_the_stored_one(redis):
    """A worker whose watermark is behind another's (which already trimmed to a further
    window) has its points folded under that further window, as if it had it."""
    newer, older = Window.of(20_619), Window.of(20_560)
    assert newer.first_day > older.first_day
    results = []
    for window in (newer, older):
        await redis.flushdb()
        await mapped(redis, {"dep-01": "ain01", "dep-32": "gers32"})
        store = ScorerStore(redis, rk).history
        await store.trim(["departements"], newer)  # the further window, recorded
        writes = [
            series_of(tid, await link_of(redis, tid), range(20_500, 20_620), window, i)
            for i, tid in enumerate(["dep-01", "dep-32"])
        ]
        written = await store.apply_series("departements", writes, window)
        results.append((written, await stored(redis)))
    assert results[0] == results[1]
    assert results[0][0] == 2 * len(fold_stored(writes[0].points, newer))
