"""Bulk deletion of derived keys (used by the rebuilds: Redis is a view, Kafka the record),
and which keys each writer owns: a rebuild wipes exactly its own."""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from services.common.contracts import CATEGORY_IDS
from services.common.view import keys as rk

CHUNK = 1000


async def unlink_keys(
    redis: Redis,
    patterns: Iterable[str],
    *,
    keys: Iterable[str] = (),
    keep_suffixes: tuple[str, ...] = (),
) -> int:
    """UNLINK the given keys and every key matching the patterns, except those ending in
    one of `keep_suffixes`; returns how many were deleted."""
    doomed: list[bytes | str] = list(keys)
    for pattern in patterns:
        async for key in redis.scan_iter(match=pattern, count=CHUNK):
            if not key.decode().endswith(keep_suffixes):
                doomed.append(key)
    deleted = 0
    for start in range(0, len(doomed), CHUNK):
        deleted += await redis.unlink(*doomed[start : start + CHUNK])
    return deleted


async def wipe_scorer_view(redis: Redis) -> int:
    """Delete every key the scorer owns (standings views, summaries, watermark, the mapping
    and the categories' account links).

    The publisher's keys stay: link status, published lists and editions, and the frozen
    markers (so a rebuild never writes a published month, as live processing never does).
    """
    patterns = [
        f"{rk.category_tag(c)}:{part}"
        for c in CATEGORY_IDS
        for part in ("cur:*", "ed:*", "meta", "geo:*", "accounts")
    ] + ["obs:sums:*", "obs:acct:*"]  # obs:acct:{…} hashes: account summaries of layout 2
    owned_meta = [
        rk.WATERMARK_KEY,
        rk.MONTHS_KEY,
        rk.ACCOUNTS_KEY,
        rk.ACCOUNTS_VERSION_KEY,
        rk.ACCOUNT_OFFSETS_KEY,
        rk.GEO_READY_KEY,
        rk.LAYOUT_KEY,
        rk.METHODOLOGY_KEY,
    ]
    return await unlink_keys(redis, patterns, keys=owned_meta, keep_suffixes=(":link", ":frozen"))


async def wipe_publisher_view(redis: Redis) -> int:
    """Delete every key the publisher owns."""
    patterns = [
        pattern
        for category in CATEGORY_IDS
        for pattern in (
            f"{rk.category_tag(category)}:rc:*",
            f"{rk.category_tag(category)}:pub:*",
            f"{rk.category_tag(category)}:ed:*:frozen",
        )
    ] + ["obs:acct:*:link"]
    keys = [rk.link_status_key(category) for category in CATEGORY_IDS]
    keys += [
        rk.FROZEN_MONTHS_KEY,
        rk.EDITIONS_KEY,
        rk.COMMAND_RESULTS_KEY,
        rk.DEAD_LINKS_KEY,
        rk.PUBLISHER_ACCOUNTS_KEY,
        rk.PUBLISHER_OFFSETS_KEY,
    ]
    return await unlink_keys(redis, patterns, keys=keys)
