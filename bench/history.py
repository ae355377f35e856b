"""The daily history's memory per ranked territory over two years, and its write cost
(target ≤ 2 KB per ranked territory for the two years; docs/decisions.md §44).

`TERRITORIES` petites villes, each with its own account, get one snapshot a day for
`DAYS` days (two years and a week) through the scorer's own stores and scripts
(services/scorer/store/history.py): first as a rebuild writes them (every day at once, under
the final window: older days fold into weeks, only the points kept are scored, every series
is written whole), then one more live day, timed, with the window moving and the rank
indexes trimmed. `MEMORY USAGE` is summed per
structure: the accounts' points, the territories' histories, the rank indexes. The baseline
is the bytes of the stored values themselves (what any store of these points holds).

Usage: python -m bench history
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis

from services.common.history import (
    RawPoint,
    Window,
    day_of_epoch,
    encode_raw,
    fold_account,
    ordinals,
    territory_series,
)
from services.common.localstack import RedisServer, free_port
from services.common.methodology import score_value
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore, geo_fingerprint
from services.scorer.store.history import SeriesWrite

TERRITORIES = 1_000
DAYS = 737
CATEGORY = "petites-villes"


def _raws(rng: random.Random, first_day: int, days: int) -> list[RawPoint]:
    followers, posts = rng.randint(300, 20_000), rng.randint(0, 40)
    out = []
    for day in range(first_day, first_day + days):
        followers = max(0, followers + rng.randint(-5, 25))
        posts = max(0, min(60, posts + rng.randint(-2, 2)))
        interactions = posts * rng.randint(5, 60)
        out.append(RawPoint(day, rng.randint(0, 86_399), followers, 250, posts, interactions))
    return out


async def _fill(url: str) -> dict[str, Any]:
    registry = load_registry()
    territories = registry.by_category(CATEGORY)[:TERRITORIES]
    order = ordinals([t.id for t in registry.by_category(CATEGORY)])
    client = Redis.from_url(url)
    try:
        store = ScorerStore(client, ViewKeys(0))
        await store.views.ensure_geo(registry, geo_fingerprint(registry))
        updater = StandingsUpdater(store, registry)
        handles = {t.id: f"bench.{t.code}" for t in territories}
        await updater.apply_accounts(
            [(tid, handle, False, i) for i, (tid, handle) in enumerate(handles.items())]
        )
        today = day_of_epoch(int(time.time()))[0]
        first = today - DAYS
        rng = random.Random(18)
        raws = {tid: _raws(rng, first, DAYS) for tid in handles}
        links = {tid: (await store.accounts.mapping())[tid].encode() for tid in handles}

        async def write(days: slice, window: Window) -> int:
            """The territories' points of some days, as the scorer writes a batch's
            (services/scorer/standings.py): each account's points folded and saved, then
            each territory's series from them, scored where the fold keeps a point."""
            accounts = {}
            for tid in handles:
                given = raws[tid][days]
                encoded = [encode_raw(raw) for raw in given]
                accounts[tid] = (given, encoded, fold_account(encoded, window))
            await store.history.save_accounts(
                {("instagram", handles[tid]): a[2].series for tid, a in accounts.items()},
                window,
            )
            series = []
            for tid, (given, encoded, folded) in accounts.items():
                population = registry[tid].population

                def score(
                    i: int, given: list[RawPoint] = given, population: int = population
                ) -> float:
                    return score_value(given[i].summary(), population)

                points = territory_series(encoded, folded, score)
                series.append(SeriesWrite(tid, order[tid], links[tid], points))
            written = await store.history.apply_series(CATEGORY, series, window)
            await store.history.trim([CATEGORY], window)
            return written

        window = Window.of(today - 1)
        started = time.perf_counter()
        written = await write(slice(0, -1), window)
        bulk_seconds = time.perf_counter() - started
        bulk = len(handles) * (DAYS - 1)

        # One more day, as the live scorer writes it: the window moves one day.
        started = time.perf_counter()
        await write(slice(-1, None), Window.of(today))
        live_seconds = time.perf_counter() - started
        shown = await store.redis.hget(ViewKeys(0).history_key(CATEGORY), territories[0].id)
        assert shown is not None
        return {
            "points_written": written,
            "bulk_seconds": round(bulk_seconds, 1),
            "bulk_points_per_second": round(bulk / bulk_seconds),
            "live_day_ms_per_1000_points": round(live_seconds * 1000 / len(handles) * 1000, 1),
        }
    finally:
        await client.aclose()


def _memory(client: redis.Redis) -> dict[str, int]:
    """MEMORY USAGE per structure, and the bytes of the values themselves (the baseline: what
    any store of these points would hold, without Redis's own overhead)."""
    groups = {"account_points": 0, "territory_histories": 0, "rank_indexes": 0, "payload": 0}
    for raw in client.scan_iter(count=1000):
        key = raw.decode()
        size = int(client.memory_usage(key) or 0)
        if key.startswith("obs:hist:"):
            groups["account_points"] += size
            groups["payload"] += sum(len(v) for v in client.hvals(key))
        elif key.endswith(":hist"):
            groups["territory_histories"] += size
            groups["payload"] += sum(len(v) for v in client.hvals(key))
        elif ":hist:d:" in key or ":hist:w:" in key:
            groups["rank_indexes"] += size
            groups["payload"] += int(client.strlen(key))
    return groups


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmpdir:
        server = RedisServer(free_port(), Path(tmpdir) / "redis.log").start()
        try:
            writes = asyncio.run(_fill(server.url))
            client = redis.Redis.from_url(server.url)
            memory = _memory(client)
            client.close()
        finally:
            server.stop()
    history = memory["account_points"] + memory["territory_histories"] + memory["rank_indexes"]
    per_territory = history / TERRITORIES
    return {
        "territories": TERRITORIES,
        "days": DAYS,
        "bytes_per_ranked_territory": {
            name: round(size / TERRITORIES) for name, size in memory.items()
        }
        | {"history": round(per_territory)},
        "ratio_to_payload": round(history / memory["payload"], 2),
        "target": "history ≤ 2048 B",
        "met": per_territory <= 2048,
        **writes,
    }
