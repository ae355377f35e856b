"""Bulk deletion of derived keys (used by the rebuilds: Redis is a view, Kafka the record)."""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

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
