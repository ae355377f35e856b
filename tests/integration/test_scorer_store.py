"""The scorer's Redis writes against a real redis-server: compare-and-set, eligibility,
re-derivation after a handle change, and the API's consistent filtered read."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.api.read.standings import StandingsRepository
from services.common.events import MetricsSnapshot, build_metrics_event
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from services.common.watermark import K, NewestAccounts, kth_newest
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore
from tests.witnesses import corroborated, witnesses

rk = ViewKeys(0)  # the generation a fresh view starts in

# Versions of the account records applied (their offsets in obs.accounts.v1): increasing.
OFFSETS = itertools.count()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def updater(redis: Redis) -> StandingsUpdater:
    registry = load_registry()
    store = ScorerStore(redis, ViewKeys(0))
    await store.views.ensure_geo(registry, "test")
    return StandingsUpdater(store, registry)


def snapshot(handle: str, observed_at: str, followers: int, **extra: object) -> MetricsSnapshot:
    posts = extra.pop("posts", [])
    event = build_metrics_event(
        handle=handle,
        observed_at=observed_at,
        status=extra.pop("status", "ok"),  # type: ignore[arg-type]
        source="sim",
        followers=followers,
        follows=100,
        media_count=10,
        recent_posts=posts,  # type: ignore[arg-type]
    )
    return MetricsSnapshot.model_validate(event)


async def ranking(
    redis: Redis, category: str = "departements", **filters: str
) -> list[tuple[str, float]]:
    page = await StandingsRepository(redis, ViewKeys(0)).page(
        category, None, offset=0, limit=500, **filters
    )
    registry = load_registry()
    return [
        (row.territory_id, row.entry.score(registry[row.territory_id].population).score)
        for row in page.rows
    ]


async def test_newer_snapshot_wins_and_older_or_duplicate_changes_nothing(updater, redis):
    await updater.apply_account("dep-32", "gers", False, version=next(OFFSETS))
    newer = snapshot("gers", "2021-06-30T06:00:00Z", 15000)
    older = snapshot("gers", "2021-06-29T06:00:00Z", 90000)
    first = await updater.apply_snapshots(corroborated([newer]))
    assert first.applied == 1
    assert (await updater.apply_snapshots(corroborated([older]))).applied == 0
    assert (await updater.apply_snapshots(corroborated([newer]))).applied == 0  # redelivery
    rows = await ranking(redis)
    assert [tid for tid, _ in rows] == ["dep-32"]
    page = await StandingsRepository(redis, ViewKeys(0)).page(
        "departements", None, offset=0, limit=5
    )
    assert page.rows[0].entry.summary.followers == 15000
    assert page.as_of == "2021-06-30T06:00:00Z"


async def test_equal_observed_at_greatest_event_id_wins_in_any_order(updater, redis):
    await updater.apply_account("dep-32", "gers", False, version=next(OFFSETS))
    a = snapshot("gers", "2021-06-30T06:00:00Z", 1000)
    b = snapshot("gers", "2021-06-30T06:00:00Z", 2000)
    winner = max((a, b), key=lambda s: s.event_id)
    for order in ([a, b], [b, a]):
        await redis.flushdb()
        await updater.apply_account("dep-32", "gers", False, version=next(OFFSETS))
        for snap in order:
            await updater.apply_snapshots(corroborated([snap]))
        page = await StandingsRepository(redis, ViewKeys(0)).page(
            "departements", None, offset=0, limit=5
        )
        assert page.rows[0].entry.summary.followers == winner.followers


async def test_territory_older_than_30_days_behind_the_watermark_is_unranked(updater, redis):
    await updater.apply_account("dep-32", "gers", False, version=next(OFFSETS))
    await updater.apply_account("dep-75", "paris", False, version=next(OFFSETS))
    await updater.apply_snapshots(corroborated([snapshot("gers", "2021-05-01T00:00:00Z", 500)]))
    await updater.apply_snapshots(corroborated([snapshot("paris", "2021-05-31T00:00:00Z", 500)]))
    assert {tid for tid, _ in await ranking(redis)} == {"dep-32", "dep-75"}  # exactly 30 days
    outcome = await updater.apply_snapshots(
        corroborated([snapshot("paris", "2021-05-31T00:00:01Z", 500)])
    )
    assert [tid for tid, _ in await ranking(redis)] == ["dep-75"]
    assert {(e["id"], e["status"]) for e in outcome.score_events} >= {("dep-32", "inactive")}


async def test_error_snapshot_moves_the_watermark_but_not_the_standings(updater, redis):
    await updater.apply_account("dep-32", "gers", False, version=next(OFFSETS))
    await updater.apply_snapshots(corroborated([snapshot("gers", "2021-06-01T00:00:00Z", 500)]))
    error = MetricsSnapshot.model_validate(
        build_metrics_event(
            handle="gers", observed_at="2021-06-20T00:00:00Z", status="error", source="sim"
        )
    )
    outcome = await updater.apply_snapshots(corroborated([error]))
    assert outcome.applied == 0
    page = await StandingsRepository(redis, ViewKeys(0)).page(
        "departements", None, offset=0, limit=5
    )
    assert page.as_of == "2021-06-20T00:00:00Z"
    assert page.rows[0].entry.summary.observed_at == "2021-06-01T00:00:00Z"


async def test_handle_change_rederives_current_and_edition_entries_at_once(updater, redis):
    await updater.apply_snapshots(
        corroborated(
            [
                snapshot("old_handle", "2021-06-10T00:00:00Z", 100),
                snapshot("new_handle", "2021-06-05T00:00:00Z", 50000),
            ]
        )
    )
    await updater.apply_account("dep-32", "old_handle", False, version=next(OFFSETS))
    page = await StandingsRepository(redis, ViewKeys(0)).page(
        "departements", None, offset=0, limit=5
    )
    assert page.rows[0].entry.handle == "old_handle"
    await updater.apply_account("dep-32", "new_handle", False, version=next(OFFSETS))
    for edition in (None, "2021-06"):
        page = await StandingsRepository(redis, ViewKeys(0)).page(
            "departements", edition, offset=0, limit=5
        )
        assert [r.territory_id for r in page.rows] == ["dep-32"]
        assert page.rows[0].entry.handle == "new_handle"
        assert page.rows[0].entry.summary.followers == 50000
    await updater.apply_account("dep-32", None, False, version=next(OFFSETS))
    assert await ranking(redis) == []


async def test_shared_account_scores_each_territory_with_its_own_population(updater, redis):
    await updater.apply_account("dep-75", "paris_maville", False, version=next(OFFSETS))
    await updater.apply_account("com-75056", "paris_maville", False, version=next(OFFSETS))
    await updater.apply_account("dep-32", "paris_maville", False, version=next(OFFSETS))
    await updater.apply_snapshots(
        corroborated([snapshot("paris_maville", "2021-06-30T06:00:00Z", 200000)])
    )
    deps = dict(await ranking(redis))
    cities = dict(await ranking(redis, "grandes-villes"))
    assert set(deps) == {"dep-75", "dep-32"} and set(cities) == {"com-75056"}
    assert deps["dep-75"] == cities["com-75056"]  # same population (dep-75 == com-75056)
    assert deps["dep-32"] > deps["dep-75"]  # Gers is smaller: more reach for the same account


async def test_region_filter_gives_filtered_and_national_ranks(updater, redis):
    for tid, handle, followers in [
        ("dep-32", "gers", 90000),  # Occitanie
        ("dep-75", "paris", 80000),  # Île-de-France
        ("dep-31", "hautegaronne", 1000),  # Occitanie
    ]:
        await updater.apply_account(tid, handle, False, version=next(OFFSETS))
        await updater.apply_snapshots(
            corroborated([snapshot(handle, "2021-06-30T06:00:00Z", followers)])
        )
    page = await StandingsRepository(redis, ViewKeys(0)).page(
        "departements", None, offset=0, limit=10, region="76"
    )
    assert [r.territory_id for r in page.rows] == ["dep-32", "dep-31"]
    assert [r.national_rank for r in page.rows] == [1, 3]
    assert page.total == 2


async def test_a_frozen_month_is_never_written_even_by_a_late_first_snapshot(updater, redis):

    await updater.apply_account("dep-32", "gers", False, version=next(OFFSETS))
    await updater.apply_account("dep-75", "paris", False, version=next(OFFSETS))
    await updater.apply_snapshots(corroborated([snapshot("gers", "2021-06-10T00:00:00Z", 100)]))
    await redis.set(rk.edition_frozen_key("departements", "2021-06"), "1")
    late = [
        snapshot("gers", "2021-06-20T00:00:00Z", 999),
        snapshot("paris", "2021-06-21T00:00:00Z", 5),
    ]
    outcome = await updater.apply_snapshots(corroborated(late))
    assert outcome.applied == 2  # the current standings still move
    june = await StandingsRepository(redis, ViewKeys(0)).page(
        "departements", "2021-06", offset=0, limit=5
    )
    assert [r.territory_id for r in june.rows] == ["dep-32"]
    assert june.rows[0].entry.summary.followers == 100


async def test_equal_observed_at_the_greatest_event_id_wins_among_many(updater, redis):
    """Versions are compared byte by byte in Lua: ids starting with any byte, in any order."""
    await updater.apply_account("dep-32", "gers", False, version=next(OFFSETS))
    snaps = [snapshot("gers", "2021-06-30T06:00:00Z", 1000 + n) for n in range(40)]
    assert len({s.event_id[:1] for s in snaps}) > 8  # first hex digits spread over the range
    winner = max(snaps, key=lambda s: s.event_id)
    random.Random(5).shuffle(snaps)
    for snap in snaps:  # one batch each: every write goes through the compare-and-set
        await updater.apply_snapshots(corroborated([snap]))
    page = await StandingsRepository(redis, ViewKeys(0)).page(
        "departements", None, offset=0, limit=5
    )
    assert page.rows[0].entry.summary.followers == winner.followers
    held = await updater.store.summaries.of_accounts("instagram", ["gers"])
    assert held["gers"][None].event_id == winner.event_id
    assert held["gers"]["2021-06"].event_id == winner.event_id


async def test_inactive_territories_leave_the_ranking_one_by_one_as_the_watermark_moves(
    updater, redis
):
    """The sweep keeps a lower bound of the ranked epochs: a territory refreshed since the
    bound was set stays, the stale ones leave exactly 30 days after their last snapshot."""
    for tid, handle in (("dep-32", "gers"), ("dep-75", "paris"), ("dep-13", "bdr")):
        await updater.apply_account(tid, handle, False, version=next(OFFSETS))
    await updater.apply_account("dep-33", "gironde", False, version=next(OFFSETS))
    await updater.apply_snapshots(corroborated([snapshot("gers", "2021-05-01T00:00:00Z", 500)]))
    await updater.apply_snapshots(corroborated([snapshot("paris", "2021-05-05T00:00:00Z", 500)]))
    await updater.apply_snapshots(corroborated([snapshot("bdr", "2021-05-10T00:00:00Z", 500)]))
    await updater.apply_snapshots(
        corroborated([snapshot("gers", "2021-05-20T00:00:00Z", 600)])
    )  # refreshed

    async def ranked_after(moment: str) -> set[str]:
        await updater.apply_snapshots(corroborated([snapshot("gironde", moment, 700)]))
        return {tid for tid, _ in await ranking(redis)}

    assert await ranked_after("2021-05-31T12:00:00Z") == {"dep-32", "dep-75", "dep-13", "dep-33"}
    assert await ranked_after("2021-06-04T00:00:00Z") == {"dep-32", "dep-75", "dep-13", "dep-33"}
    assert await ranked_after("2021-06-04T00:00:01Z") == {"dep-32", "dep-13", "dep-33"}
    assert await ranked_after("2021-06-09T00:00:01Z") == {"dep-32", "dep-33"}
    assert await ranked_after("2021-06-19T00:00:01Z") == {"dep-33"}
    # Entries stay (an older event can never come back in); only the ranking drops them.
    entries = await updater.store.views.entries("departements", None, ["dep-32", "dep-75"])
    assert all(raw is not None for raw in entries)


async def test_account_summaries_keep_the_newest_per_month_and_drop_frozen_months(updater, redis):
    """One packed value per account: each month compare-and-set apart, months arriving in any
    order; a frozen month is dropped unless it is the account's newest (its current)."""

    store = updater.store
    for observed_at, followers in [
        ("2021-07-02T00:00:00Z", 70),
        ("2021-05-31T00:00:00Z", 50),  # an older month, after a newer one
        ("2021-06-15T00:00:00Z", 60),
        ("2021-06-01T00:00:00Z", 1),  # older within June: loses
        ("2021-07-01T00:00:00Z", 2),  # older within July: loses
    ]:
        await updater.apply_snapshots(corroborated([snapshot("gers", observed_at, followers)]))
    held = (await store.summaries.of_accounts("instagram", ["gers"]))["gers"]
    assert {m: s.followers for m, s in held.items()} == {
        "2021-05": 50,
        "2021-06": 60,
        "2021-07": 70,
        None: 70,
    }
    # May and June are published: the next write drops them, never July (the newest).
    await redis.sadd(rk.FROZEN_MONTHS_KEY, "2021-05", "2021-06", "2021-07")
    await updater.apply_snapshots(corroborated([snapshot("gers", "2021-06-20T00:00:00Z", 65)]))
    held = (await store.summaries.of_accounts("instagram", ["gers"]))["gers"]
    assert {m: s.followers for m, s in held.items()} == {"2021-07": 70, None: 70}
    # Another account shares nothing with it, whatever its bucket.
    await updater.apply_snapshots(corroborated([snapshot("paris", "2021-07-03T00:00:00Z", 9)]))
    both = await store.summaries.of_accounts("instagram", ["gers", "paris", "nobody"])
    assert both["paris"][None].followers == 9 and both["gers"][None].followers == 70
    assert both["nobody"] == {}


async def test_no_watermark_until_three_accounts_then_the_first_sweep_finds_old_entries(
    updater, redis
):
    """While fewer than K accounts are observed nobody is inactive and no category has an
    `as_of`; entries ranked meanwhile are still swept once a watermark exists."""
    for tid, handle in (("dep-32", "gers"), ("dep-75", "paris"), ("dep-13", "bdr")):
        await updater.apply_account(tid, handle, False, version=next(OFFSETS))
    await updater.apply_snapshots([snapshot("gers", "2021-05-01T00:00:00Z", 500)])
    outcome = await updater.apply_snapshots([snapshot("paris", "2021-06-15T00:00:00Z", 500)])
    assert outcome.watermark is None
    page = await StandingsRepository(redis, ViewKeys(0)).page(
        "departements", None, offset=0, limit=5
    )
    assert page.as_of is None and {row.territory_id for row in page.rows} == {"dep-32", "dep-75"}
    # A third account: the 3rd newest is Gers's own time, so Gers is still ranked.
    outcome = await updater.apply_snapshots([snapshot("bdr", "2021-06-15T00:00:00Z", 500)])
    assert outcome.watermark == 1619827200  # 2021-05-01T00:00:00Z
    assert {tid for tid, _ in await ranking(redis)} == {"dep-32", "dep-75", "dep-13"}
    # A fourth, unused: the 3rd newest is now 2021-06-15, and Gers is 45 days behind it.
    outcome = await updater.apply_snapshots(
        [MetricsSnapshot.model_validate(witnesses("2021-06-20T00:00:00Z")[0])]
    )
    assert {tid for tid, _ in await ranking(redis)} == {"dep-75", "dep-13"}
    assert ("dep-32", "inactive") in {(e["id"], e["status"]) for e in outcome.score_events}
    page = await StandingsRepository(redis, ViewKeys(0)).page(
        "departements", None, offset=0, limit=5
    )
    assert page.as_of == "2021-06-15T00:00:00Z"


async def test_one_account_far_in_the_future_unranks_nobody(updater, redis):
    for tid, handle in (("dep-32", "gers"), ("dep-75", "paris")):
        await updater.apply_account(tid, handle, False, version=next(OFFSETS))
    await updater.apply_snapshots(
        [
            *corroborated([snapshot("gers", "2021-06-01T00:00:00Z", 500)]),
            snapshot("paris", "2021-06-02T00:00:00Z", 500),
        ]
    )
    before = await ranking(redis)
    as_of = "2021-06-01T00:00:00Z"  # the 3rd newest: Gers and its two witnesses
    page = await StandingsRepository(redis, ViewKeys(0)).page(
        "departements", None, offset=0, limit=5
    )
    assert page.as_of == as_of
    forged = MetricsSnapshot.model_validate(
        build_metrics_event(
            handle="faussaire", observed_at="2099-01-01T00:00:00Z", status="not_found", source="sim"
        )
    )
    outcome = await updater.apply_snapshots([forged])
    assert outcome.watermark == 1622505600  # still 2021-06-01T00:00:00Z
    assert await ranking(redis) == before
    page = await StandingsRepository(redis, ViewKeys(0)).page(
        "departements", None, offset=0, limit=5
    )
    assert page.as_of == as_of


async def test_the_stored_watermark_is_the_k_th_newest_whatever_the_batches(redis):
    """ADVANCE_WATERMARK (ZADD GT, then trim to K) against the plain computation, on random
    batches in random orders, on a real redis-server."""
    store = ScorerStore(redis, ViewKeys(0))
    rnd = random.Random(12)
    for _ in range(40):
        await redis.delete(rk.WATERMARK_KEY)
        log = [(f"instagram:c{rnd.randrange(6)}", rnd.randrange(1000)) for _ in range(25)]
        newest: dict[str, int] = {}
        for account, epoch in log:
            newest[account] = max(epoch, newest.get(account, epoch))
        rnd.shuffle(log)
        got = None
        while log:
            size = rnd.randint(1, 6)
            batch, log = log[:size], log[size:]
            held = NewestAccounts()
            for account, epoch in batch:
                held.add(account, epoch)
            previous = got
            got = await store.summaries.advance_watermark(held)
            assert previous is None or (got is not None and got >= previous)  # never back
        assert got == kth_newest(newest.values())
        assert await store.summaries.watermark() == got
        assert await redis.zcard(rk.WATERMARK_KEY) <= K
