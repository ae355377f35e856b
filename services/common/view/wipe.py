"""Bulk deletion of derived keys: a generation of the view dropped after a rebuild replaced it
(Redis is a view, Kafka the record)."""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from services.common.view.keys import SHARED_KEYS, ViewKeys

CHUNK = 1000


async def unlink_keys(
    redis: Redis,
    patterns: Iterable[str],
    *,
    keys: Iterable[str] = (),
    keep_suffixes: tuple[str, ...] = (),
) -> int:
    """UNLINK the given keys and every key matching the patterns, except those ending in
    one of `keep_suffixes`; returns how many were deleted.

    On a Redis Cluster (view/client.py) SCAN is per node: the cluster client's `scan_iter`
    walks every primary to its own end, and its `unlink` sends one UNLINK per slot (a command's
    keys must share one), pipelined per node (tests/integration/test_redis_cluster.py)."""
    doomed: list[bytes | str] = list(keys)
    for pattern in patterns:
        async for key in redis.scan_iter(match=pattern, count=CHUNK):
            if not key.decode().endswith(keep_suffixes):
                doomed.append(key)
    deleted = 0
    for start in range(0, len(doomed), CHUNK):
        deleted += await redis.unlink(*doomed[start : start + CHUNK])
    return deleted


async def drop_generation(redis: Redis, rk: ViewKeys) -> int:
    """Delete every key of one generation of the view (the scorer's and the publisher's);
    returns how many. The keys outside every generation stay: the generation pointer, the
    publisher's lease and its token counter."""
    if rk.generation:
        return await unlink_keys(redis, [rk.pattern()])
    # Generation 0's keys have no marker of their own: its tags, minus the shared keys.
    shared = tuple(key.removeprefix("obs:{meta}") for key in SHARED_KEYS)
    patterns = ["obs:{cat:*", "obs:sums:*", "obs:hist:*", "obs:acct:*", "obs:{meta}:*"]
    return await unlink_keys(redis, patterns, keep_suffixes=shared)
