"""Read-only access to the standings views: one Lua script per response (a consistent view)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from services.common import redis_keys as rk
from services.common.standings_entry import StoredEntry, decode_entry

# KEYS[1] rank ZSET, KEYS[2] entry HASH, KEYS[3] meta HASH, KEYS[4] link HASH,
# KEYS[5] geo SET or the rank ZSET again when unfiltered.
# ARGV[1] offset, ARGV[2] limit, ARGV[3] "1" when filtered.
# One consistent read of a category view: total, as_of, ids, entries, national ranks, links.
READ_STANDINGS = """
local offset, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids, total
if ARGV[3] == '1' then
  local all = redis.call('ZINTER', 2, KEYS[1], KEYS[5], 'WEIGHTS', 1, 0)
  total = #all
  ids = {}
  for i = offset + 1, math.min(offset + limit, total) do ids[#ids + 1] = all[i] end
else
  total = redis.call('ZCARD', KEYS[1])
  if limit > 0 then
    ids = redis.call('ZRANGE', KEYS[1], offset, offset + limit - 1)
  else
    ids = {}
  end
end
local entries, nranks, links = {}, {}, {}
if #ids > 0 then
  entries = redis.call('HMGET', KEYS[2], unpack(ids))
  links = redis.call('HMGET', KEYS[4], unpack(ids))
  for i, id in ipairs(ids) do nranks[i] = redis.call('ZRANK', KEYS[1], id) end
end
local as_of = redis.call('HGET', KEYS[3], 'as_of')
return {total, as_of or false, ids, entries, nranks, links}
"""


@dataclass(frozen=True, slots=True)
class StandingsRow:
    """One ranked territory as stored, with its national rank and link status."""

    territory_id: str
    national_rank: int
    entry: StoredEntry
    link_status: str | None


@dataclass(frozen=True, slots=True)
class StandingsPage:
    """A slice of a view with the total after filters and the watermark it reflects."""

    total: int
    as_of: str | None
    rows: list[StandingsRow]


class StandingsRepository:
    """Reads standings views (current or an edition month) from Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._read = redis.register_script(READ_STANDINGS)

    async def page(
        self,
        category: str,
        edition: str | None,
        *,
        offset: int,
        limit: int,
        region: str | None = None,
        departement: str | None = None,
    ) -> StandingsPage:
        """One consistent read of a category view, optionally filtered by région/département."""
        prefix = rk.view_prefix(category, edition)
        rank = rk.rank_key(prefix)
        if region is not None:
            geo, filtered = rk.geo_key(category, "reg", region), True
        elif departement is not None:
            geo, filtered = rk.geo_key(category, "dep", departement), True
        else:
            geo, filtered = rank, False
        keys = [
            rank,
            rk.entry_key(prefix),
            rk.meta_key(category),
            rk.link_status_key(category),
            geo,
        ]
        total, as_of, ids, entries, nranks, links = await self._read(
            keys=keys, args=[offset, limit, int(filtered)]
        )
        rows = [
            StandingsRow(
                territory_id=tid.decode(),
                national_rank=int(nrank) + 1,
                entry=decode_entry(entry),
                link_status=None if link is None else link.decode(),
            )
            for tid, entry, nrank, link in zip(ids, entries, nranks, links, strict=True)
            if entry is not None
        ]
        return StandingsPage(
            total=int(total), as_of=None if not as_of else as_of.decode(), rows=rows
        )
