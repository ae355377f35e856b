"""Redis memory per ranked territory, all 36,249 territories (target ≤ 1 KB for every structure
together; a naive layout measured 612 B for the communes' sorted sets and hashes alone).

One simulated daily snapshot per territory is applied through the scorer's own code
(StandingsUpdater → ScorerStore → the Lua scripts) into an empty Redis started for the bench;
no broker is involved, so this runs in seconds. `MEMORY USAGE` is summed by structure.

Usage: python -m bench memory
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import redis
from redis.asyncio import Redis

from bench.common import now, world
from bench.scorer import memory_by_group
from services.common.clock import PARIS
from services.common.contracts import CATEGORY_IDS
from services.common.events import MetricsSnapshot
from services.common.localstack import RedisServer, free_port
from services.common.territories import load_registry
from services.common.validation import Rejection, validate_metrics
from services.common.view.keys import ViewKeys
from services.common.view.layout import claim_view
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore, geo_fingerprint

BATCH = 2000


def _moments(months: int) -> list[datetime]:
    """One snapshot moment per open month: the last day of each earlier month, then now."""
    end = now()
    moments = [end]
    for _ in range(months - 1):
        first = moments[0].astimezone(PARIS).replace(day=1, hour=12, minute=0, second=0)
        moments.insert(0, (first - timedelta(days=1)).astimezone(UTC))
    return moments


async def _fill(url: str, months: int) -> tuple[int, float]:
    registry = load_registry()
    moments = _moments(months)
    sim = world(tuple(CATEGORY_IDS), moments[-1])
    client = Redis.from_url(url)
    try:
        store = ScorerStore(client, ViewKeys(0))
        await claim_view(client, ViewKeys(0), where=url)
        await store.views.ensure_geo(registry, geo_fingerprint(registry))
        updater = StandingsUpdater(store, registry)
        records = list(sim.account_records())
        await updater.apply_accounts(
            [(r["id"], r["handle"], r["simulated"], offset) for offset, r in enumerate(records)]
        )
        snapshots: list[MetricsSnapshot] = []
        for moment in moments:
            for event in sim.snapshots(moment):
                result = validate_metrics(orjson.dumps(event), None)
                assert not isinstance(result, Rejection), result
                snapshots.append(result)
        started = time.perf_counter()
        for start in range(0, len(snapshots), BATCH):
            await updater.apply_snapshots(snapshots[start : start + BATCH])
        return len(snapshots), time.perf_counter() - started
    finally:
        await client.aclose()


def run() -> dict[str, Any]:
    return {f"{months}_month{'s' if months > 1 else ''}_open": measure(months) for months in (1, 2)}


def measure(months: int) -> dict[str, Any]:
    """Fill an empty Redis with `months` open edition months and sum its memory by structure."""
    with tempfile.TemporaryDirectory() as tmpdir:
        server = RedisServer(free_port(), Path(tmpdir) / "redis.log").start()
        try:
            events, seconds = asyncio.run(_fill(server.url, months))
            client = redis.Redis.from_url(server.url)
            ranked = sum(client.zcard(f"obs:{{cat:{c}}}:cur:rank") for c in CATEGORY_IDS)
            memory = memory_by_group(client)
            used = int(client.info("memory")["used_memory"])
        finally:
            server.stop()
    months = memory.pop("months")
    return {
        "snapshots_applied": events,
        "apply_seconds": round(seconds, 1),
        "ranked_territories": ranked,
        "edition_months": months,
        "bytes_per_ranked_territory": {
            group: round(size / max(ranked, 1)) for group, size in memory.items()
        },
        "redis_used_memory_mb": round(used / 2**20, 1),
        "target": "all_but_geo ≤ 1024 B",
    }
