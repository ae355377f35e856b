"""What the coverage page counts, read from the view: each category's ranked territories (its
current standings), the account mapping and the dead-links index.

Every category's ranked ids and watermark are one pipeline: one `ZRANGE` of the category's
ranking (a single command, so one consistent read of that category) and one `HGET` of its
`as_of`. The per-région figures are counted from those ids and the registry
(services/common/coverage.py), not with one read per région: the région filter of the standings
is the same membership (the scorer's geo sets are built from the registry's régions).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from services.api.read.links import dead_links
from services.common.contracts import CATEGORY_IDS
from services.common.coverage import Coverage, count_coverage
from services.common.territories import Registry
from services.common.view.accounts import AccountMapping
from services.common.view.keys import ViewKeys


@dataclass(frozen=True, slots=True)
class CoverageReading:
    """The coverage and the newest watermark of the categories read (None: no view yet)."""

    coverage: Coverage
    as_of: str | None


async def ranked_ids(redis: Redis, rk: ViewKeys) -> tuple[dict[str, list[str]], str | None]:
    """Every category's ranked territory ids, and the newest `as_of` of the categories."""
    async with redis.pipeline(transaction=False) as pipe:
        for category in CATEGORY_IDS:
            pipe.zrange(rk.rank_key(rk.view_prefix(category, None)), 0, -1)
            pipe.hget(rk.meta_key(category), "as_of")
        replies = await pipe.execute()
    ranked: dict[str, list[str]] = {}
    as_of: str | None = None
    for index, category in enumerate(CATEGORY_IDS):
        ids, stamp = replies[2 * index], replies[2 * index + 1]
        ranked[category] = [_text(member) for member in ids]
        if stamp:
            text = _text(stamp)
            as_of = text if as_of is None or text > as_of else as_of
    return ranked, as_of


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read_coverage(
    redis: Redis, rk: ViewKeys, accounts: AccountMapping, registry: Registry
) -> CoverageReading:
    """The coverage of the current generation of the view."""
    ranked, as_of = await ranked_ids(redis, rk)
    mapping = await accounts.mapping()
    links = await dead_links(redis, rk)
    coverage = count_coverage(
        registry,
        accounts={tid: link.simulated for tid, link in mapping.items() if link.handle is not None},
        measured=(tid for ids in ranked.values() for tid in ids),
        dead=(tid for link in links for tid in link.territories),
    )
    return CoverageReading(coverage, as_of)
