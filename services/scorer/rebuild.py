"""Rebuild the scorer's part of the derived view from the topics (`observatoire rebuild`).

Reads `obs.accounts.v1` then `obs.metrics.v1` from the beginning to the end offsets seen at the
start, with a bulk consumer, and applies them through the same validation, pure scoring and
Redis compare-and-set code as the live scorer (StandingsUpdater). Because every write is
idempotent and order-independent, the result equals what live processing produced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from services.common import redis_keys as rk
from services.common.contracts import CATEGORY_IDS, TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.events import MetricsSnapshot
from services.common.redis_admin import unlink_keys
from services.common.settings import Settings
from services.common.streams import read_topic
from services.common.territories import Registry, load_registry
from services.common.validation import Rejection, validate_account, validate_metrics
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore, geo_fingerprint

log = logging.getLogger("rebuild")
APPLY_BATCH = 5_000


@dataclass(slots=True)
class RebuildReport:
    """What a rebuild read, applied and rejected, and how long it took."""

    accounts: int = 0
    metrics: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def reject(self, rejection: Rejection) -> None:
        self.rejected[rejection.reason] = self.rejected.get(rejection.reason, 0) + 1


async def wipe_scorer_view(redis: Redis) -> int:
    """Delete every key the scorer owns (standings views, summaries, watermark, mapping).

    The publisher's keys stay: link status, published lists and editions, and the frozen
    markers (so a rebuild never writes a published month, as live processing never does).
    """
    patterns = [
        f"{rk.category_tag(c)}:{part}"
        for c in CATEGORY_IDS
        for part in ("cur:*", "ed:*", "meta", "geo:*")
    ] + ["obs:acct:*"]
    owned_meta = [
        rk.WATERMARK_KEY,
        rk.MONTHS_KEY,
        rk.ACCOUNTS_KEY,
        rk.ACCOUNTS_VERSION_KEY,
        rk.GEO_READY_KEY,
        rk.LAYOUT_KEY,
    ]
    return await unlink_keys(redis, patterns, keys=owned_meta, keep_suffixes=(":link", ":frozen"))


async def rebuild(
    settings: Settings,
    *,
    registry: Registry | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> RebuildReport:
    """Wipe the scorer's view and rebuild it from `obs.accounts.v1` and `obs.metrics.v1`."""
    report = RebuildReport()
    started = time.perf_counter()
    registry = registry or load_registry()
    redis = Redis.from_url(settings.redis_url)
    try:
        await wipe_scorer_view(redis)
        store = ScorerStore(redis)
        await store.claim_layout()
        await store.ensure_geo(registry, geo_fingerprint(registry))
        updater = StandingsUpdater(store, registry)
        async for chunk in read_topic(settings, TOPIC_ACCOUNTS):
            changes = []
            for record in chunk:
                result = validate_account(record.value, record.timestamp)
                if isinstance(result, Rejection):
                    report.reject(result)
                elif result.id not in registry:
                    report.reject(Rejection("unknown_territory", result.id))
                else:
                    changes.append((result.id, result.handle, result.simulated))
            await updater.apply_accounts(changes)
            report.accounts += len(changes)
            if progress:
                progress(TOPIC_ACCOUNTS, len(chunk))
        async for chunk in read_topic(settings, TOPIC_METRICS):
            valid: list[MetricsSnapshot] = []
            for record in chunk:
                snapshot = validate_metrics(record.value, record.timestamp)
                if isinstance(snapshot, Rejection):
                    report.reject(snapshot)
                else:
                    valid.append(snapshot)
            for start in range(0, len(valid), APPLY_BATCH):
                await updater.apply_snapshots(valid[start : start + APPLY_BATCH])
            report.metrics += len(valid)
            if progress:
                progress(TOPIC_METRICS, len(chunk))
    finally:
        await redis.aclose()
    report.seconds = time.perf_counter() - started
    return report
