"""The daily history against a real redis-server: each Europe/Paris day's point is the day's
last `ok` snapshot whatever order batches arrive in, a late snapshot moves its day's point,
ranks are among the category's points of the day, and older days fold into weeks."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from services.api.read.history import HistoryReader
from services.api.read.territory import TerritoryReader
from services.common.events import MetricsSnapshot, build_metrics_event
from services.common.history import split_series
from services.common.methodology import score_summary, summarise_snapshot
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore
from tests.witnesses import corroborated

rk = ViewKeys(0)
REGISTRY = load_registry()
OFFSETS = itertools.count()
PARIS = ZoneInfo("Europe/Paris")
TERRITORIES = {"dep-01": "ain01", "dep-02": "aisne02", "dep-03": "allier03", "dep-32": "gers32"}
TERRITORIES |= {"dep-75": "paris75", "dep-2A": "corsedusud"}


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def mapped_updater(redis: Redis) -> StandingsUpdater:
    store = ScorerStore(redis, rk)
    await store.views.ensure_geo(REGISTRY, "test")
    updater = StandingsUpdater(store, REGISTRY)
    for tid, handle in TERRITORIES.items():
        await updater.apply_account(tid, handle, False, version=next(OFFSETS))
    return updater


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def snap(
    handle: str, moment: datetime, followers: int, posts: int = 3, likes: int = 40
) -> MetricsSnapshot:
    at = stamp(moment)
    recent = [
        {
            "id": f"{handle}{i}{at}",
            "published_at": stamp(moment - timedelta(hours=5 + i)),
            "likes": likes + i * 7,
            "comments": i,
            "likes_hidden": False,
        }
        for i in range(posts)
    ]
    event = build_metrics_event(
        handle=handle,
        observed_at=at,
        status="ok",
        source="sim",
        followers=followers,
        follows=120,
        media_count=50,
        recent_posts=recent,
    )
    return MetricsSnapshot.model_validate(event)


def expected(snapshots: list[MetricsSnapshot]) -> dict[str, list[tuple]]:
    """The reference: each territory's (date, observed_at, score, rank, ranked, followers,
    posts) per Paris day, computed here from the snapshots alone (no folding: tests using it
    span less than the daily window)."""
    by_handle = {h: tid for tid, h in TERRITORIES.items()}
    last: dict[tuple[str, str], tuple] = {}
    for s in snapshots:
        tid = by_handle.get(s.handle)
        if tid is None:
            continue
        moment = datetime.strptime(s.observed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        day = moment.astimezone(PARIS).date().isoformat()
        summary = summarise_snapshot(
            observed_at=s.observed_at,
            event_id=s.event_id,
            followers=s.followers or 0,
            follows=s.follows or 0,
            recent_posts=s.recent_posts or (),
        )
        score = score_summary(summary, REGISTRY[tid].population).score
        # The day's last: by observed_at, then (same second) followers, posts, score.
        candidate = (s.observed_at, summary.followers, summary.posts, score)
        if (tid, day) not in last or candidate > last[(tid, day)]:
            last[(tid, day)] = candidate
    by_day: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for (tid, day), (_, _, _, score) in last.items():
        by_day[day].append((-score, tid))
    out: dict[str, list[tuple]] = defaultdict(list)
    for (tid, day), (observed_at, followers, posts, score) in sorted(last.items()):
        ranking = sorted(by_day[day])
        rank = ranking.index((-score, tid)) + 1
        out[tid].append((day, observed_at, score, rank, len(ranking), followers, posts))
    return out


async def shown(redis: Redis) -> dict[str, list[tuple]]:
    reader = HistoryReader(redis, rk, REGISTRY)
    out: dict[str, list[tuple]] = {}
    for tid in TERRITORIES:
        history = await reader.read(REGISTRY[tid])
        rows = [
            (
                p.shown.point.date.isoformat(),
                p.observed_at,
                p.shown.point.score,
                p.rank,
                p.ranked,
                p.shown.point.followers,
                p.shown.point.posts,
            )
            for p in history.points
        ]
        if rows:
            out[tid] = rows
    return out


def month_of_snapshots(seed: int, days: int = 12) -> list[MetricsSnapshot]:
    rng = random.Random(seed)
    start = datetime(2026, 3, 20, tzinfo=PARIS)  # the days cross the change to summer time
    out = []
    for day in range(days):
        for handle in TERRITORIES.values():
            for _ in range(rng.randint(0, 3)):
                # Paris midnight to 23:59:59, so a day's first and last seconds are exercised
                second = rng.choice([0, 1, rng.randint(0, 86_399), 86_399])
                moment = start + timedelta(days=day, seconds=second)
                out.append(snap(handle, moment, rng.randint(500, 90_000), rng.randint(0, 9)))
    return out


async def apply_in_batches(updater: StandingsUpdater, snapshots, seed: int, size: int) -> None:
    order = list(snapshots)
    random.Random(seed).shuffle(order)
    for i in range(0, len(order), size):
        await updater.apply_snapshots(corroborated(order[i : i + size]))


async def test_each_day_is_its_last_snapshot_ranked_among_the_day_in_any_order(redis):
    snapshots = month_of_snapshots(seed=7)
    want = expected(snapshots)
    assert sum(len(rows) for rows in want.values()) > 40
    for seed, size in ((1, 1), (2, 7), (3, 500)):
        await redis.flushdb()
        updater = await mapped_updater(redis)
        await apply_in_batches(updater, snapshots, seed, size)
        assert await shown(redis) == want, f"order {seed}, batches of {size}"


async def test_a_late_snapshot_moves_its_days_point_and_the_days_ranks(redis):
    snapshots = month_of_snapshots(seed=11, days=6)
    updater = await mapped_updater(redis)
    await apply_in_batches(updater, snapshots, seed=5, size=50)
    before = await shown(redis)
    day = datetime(2026, 3, 22, tzinfo=PARIS)
    # Late: after every later day was applied, a snapshot of the 22nd's last second with many
    # more followers, and one of its first second that must not change anything.
    late = snap("aisne02", day + timedelta(seconds=86_399), 5_000_000, 9)
    early = snap("gers32", day, 9_000_000, 9)
    await updater.apply_snapshots(corroborated([late]))
    await updater.apply_snapshots(corroborated([early]))
    after = await shown(redis)
    want = expected([*snapshots, late, early])
    assert after == want
    aisne = {row[0]: row for row in after["dep-02"]}["2026-03-22"]
    assert aisne[5] == 5_000_000 and aisne[1] == late.observed_at
    assert aisne[3] == 1  # first that day now
    assert before["dep-02"] != after["dep-02"]
    gers_before = {row[0]: row for row in before["dep-32"]}.get("2026-03-22")
    gers_after = {row[0]: row for row in after["dep-32"]}["2026-03-22"]
    if gers_before is not None:
        assert gers_after[1] == gers_before[1]  # the earlier snapshot did not win


async def test_older_days_fold_into_weeks_and_their_indexes_are_dropped(redis):
    updater = await mapped_updater(redis)
    start = datetime(2025, 11, 3, 12, tzinfo=PARIS)  # a Monday
    snapshots = [
        snap(handle, start + timedelta(days=day, hours=i), 1_000 + day * 10 + i)
        for day in range(140)
        for i, handle in enumerate(("ain01", "aisne02", "gers32"))
    ]
    await apply_in_batches(updater, snapshots, seed=3, size=90)
    history = await HistoryReader(redis, rk, REGISTRY).read(REGISTRY["dep-01"])
    weekly = [p for p in history.points if p.shown.weekly]
    daily = [p for p in history.points if not p.shown.weekly]
    last_day = (start + timedelta(days=139)).date()
    assert daily[-1].shown.point.date == last_day
    assert 90 <= len(daily) <= 96
    assert daily[0].shown.point.date.isoweekday() == 1  # whole ISO weeks
    assert (140 - len(daily)) % 7 == 0 and len(weekly) == (140 - len(daily)) // 7
    weeks = [p.shown.point.date.isocalendar()[:2] for p in weekly]
    assert len(weeks) == len(set(weeks))  # one point per week
    assert all(p.shown.point.date.isoweekday() == 7 for p in weekly)  # the week's last: Sunday
    assert all(p.rank == 3 and p.ranked == 3 for p in history.points)  # lowest followers
    # Index keys of folded days are gone; every kept day has one.
    first = daily[0].shown.point.day
    days = {int(k.rsplit(b":", 1)[1]) async for k in redis.scan_iter(match="*hist:d:*")}
    assert min(days) == first and len(days) == len(daily)
    # The account's daily points give its follower gains (month summaries alone could not).
    detail = await TerritoryReader(redis, rk, REGISTRY).detail(REGISTRY["dep-01"])
    gains = [None if g is None else (g["days"], g["gain"]) for g in detail["follower_gains"]]
    assert gains == [(7, 70), (30, 300), (90, 900), None]  # 10 followers a day, 140 days
    series = await redis.hget(rk.history_key("departements"), "dep-01")
    assert len(split_series(series)[1]) == 13 * len(history.points)  # stored folded too


async def test_a_handle_change_makes_the_history_the_new_accounts_as_a_rebuild_finds_it(redis):
    snapshots = month_of_snapshots(seed=13, days=5)
    # An account no territory uses yet, observed on the same days.
    newcomer = [snap("gers.officiel", s_moment(s), 77_000 + i) for i, s in enumerate(snapshots[:9])]
    updater = await mapped_updater(redis)
    await apply_in_batches(updater, [*snapshots, *newcomer], seed=2, size=40)
    before = await shown(redis)
    await updater.apply_account("dep-32", "gers.officiel", False, version=next(OFFSETS))
    TERRITORIES["dep-32"] = "gers.officiel"
    try:
        want = expected([*snapshots, *newcomer])
        after = await shown(redis)
        assert after == want  # Gers' history is its new account's, the others' ranks follow
        assert after["dep-32"] != before["dep-32"]
        # Back to the first account: its whole history again.
        await updater.apply_account("dep-32", "gers32", False, version=next(OFFSETS))
        TERRITORIES["dep-32"] = "gers32"
        assert await shown(redis) == expected([*snapshots, *newcomer]) == before
        # No account: no history, and no entry left in any index.
        await updater.apply_account("dep-32", None, False, version=next(OFFSETS))
        history = await HistoryReader(redis, rk, REGISTRY).read(REGISTRY["dep-32"])
        assert history.points == []
        others = await shown(redis)
        without = {tid: h for tid, h in TERRITORIES.items() if tid != "dep-32"}
        TERRITORIES.clear()
        TERRITORIES.update(without)
        assert others == expected([*snapshots, *newcomer])
    finally:
        TERRITORIES["dep-32"] = "gers32"


def s_moment(s: MetricsSnapshot) -> datetime:
    return datetime.strptime(s.observed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
