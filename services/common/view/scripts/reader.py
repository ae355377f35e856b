"""The API's scripts: every response about one category is one read on its slot.

The scorer's views (current, unpublished months), the publisher's published editions, link
statuses and rank-change state of a category all share the hash tag `{cat:<category>}`
(docs/redis.md), so each script below reads one consistent state that no write interleaves.
Lua's `unpack()` is only ever given a page (at most 500 ids), far below its stack limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

import orjson

from services.common.view.entries import StoredEntry, decode_entry
from services.common.view.keys import ViewKeys
from services.common.view.scripts import Script, integer, text

# Shared functions. A page of the scorer's view (current or an unpublished month), with the
# national rank, link status and rank in the latest published edition of each id.
_READ_VIEW: Final = """
local function read_view(rank, entry, meta, link, geo, latest, offset, limit, filtered)
  local ids, total
  local nranks = {}
  if filtered then
    local all = redis.call('ZINTER', 2, rank, geo, 'WEIGHTS', 1, 0)
    total = #all
    ids = {}
    for i = offset + 1, math.min(offset + limit, total) do ids[#ids + 1] = all[i] end
    for i, id in ipairs(ids) do nranks[i] = redis.call('ZRANK', rank, id) end
  else
    total = redis.call('ZCARD', rank)
    ids = redis.call('ZRANGE', rank, offset, offset + limit - 1)
    for i = 1, #ids do nranks[i] = offset + i - 1 end  -- unfiltered: the position is the rank
  end
  local entries, links, before = {}, {}, {}
  if #ids > 0 then
    entries = redis.call('HMGET', entry, unpack(ids))
    links = redis.call('HMGET', link, unpack(ids))
    before = redis.call('ZMSCORE', latest, unpack(ids))
  end
  local as_of = redis.call('HGET', meta, 'as_of')
  return {total, as_of or false, ids, entries, nranks, links, before}
end
"""

# A page of a published edition (ranks are the ZSET scores 1..N, so ZRANGE is rank order).
_READ_PUBLISHED: Final = """
local function read_published(rank, entry, meta, geo, offset, limit, filtered)
  local ids, total
  if filtered then
    local all = redis.call('ZINTER', 2, rank, geo, 'WEIGHTS', 1, 0)
    total = #all
    ids = {}
    for i = offset + 1, math.min(offset + limit, total) do ids[#ids + 1] = all[i] end
  else
    total = redis.call('ZCARD', rank)
    ids = redis.call('ZRANGE', rank, offset, offset + limit - 1)
  end
  local entries = {}
  if #ids > 0 then entries = redis.call('HMGET', entry, unpack(ids)) end
  local published_at = redis.call('HGET', meta, 'published_at')
  return {total, published_at or false, ids, entries}
end
"""

# KEYS: 1 view rank, 2 view entry, 3 meta, 4 link, 5 geo SET (or the rank again), 6 latest
# published rank, 7 latest published edition STRING, 8 rank-change state HASH.
# ARGV: offset, limit, "1" when filtered.
# Returns the view page, then the latest published edition and the last rank-change seq.
_READ_CURRENT: Final = (
    _READ_VIEW
    + """
local page = read_view(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6],
                       tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1')
page[#page + 1] = redis.call('GET', KEYS[7]) or false
page[#page + 1] = redis.call('HGET', KEYS[8], 'seq') or false
return page
"""
)

# KEYS: 1-7 as READ_CURRENT for the month's scorer view (`ed:M`), 8 published rank of M,
# 9 published entry of M, 10 published meta of M.
# ARGV: offset, limit, "1" when filtered.
# A month published in this category is read from the publisher's immutable copy; otherwise
# from the scorer's view (provisional). Returns {"published"|"provisional", page, latest}.
_READ_EDITION: Final = (
    _READ_VIEW
    + _READ_PUBLISHED
    + """
local offset, limit, filtered = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
if redis.call('EXISTS', KEYS[10]) == 1 then
  return {'published', read_published(KEYS[8], KEYS[9], KEYS[10], KEYS[5], offset, limit,
                                      filtered), false}
end
return {'provisional', read_view(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6],
                                 offset, limit, filtered), redis.call('GET', KEYS[7]) or false}
"""
)

# KEYS: 1 cur rank, 2 cur entry, 3 link, 4 meta, 5 latest published edition STRING,
# 6 rank-change state HASH. ARGV: how many leaders.
# The home page's summary of a category: size, leaders, watermark, latest edition, seq.
_READ_SUMMARY: Final = """
local total = redis.call('ZCARD', KEYS[1])
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local entries, links = {}, {}
if #ids > 0 then
  entries = redis.call('HMGET', KEYS[2], unpack(ids))
  links = redis.call('HMGET', KEYS[3], unpack(ids))
end
return {total, ids, entries, links, redis.call('HGET', KEYS[4], 'as_of') or false,
        redis.call('GET', KEYS[5]) or false, redis.call('HGET', KEYS[6], 'seq') or false}
"""

# KEYS: 1 cur rank, 2 cur entry, 3 link, 4 meta, 5 latest published rank, 6 latest published
# edition STRING, then ARGV[2] geo SETs (the territory's régions and départements), then
# ARGV[3] pairs (published rank, published entry) of the months asked for.
# ARGV: 1 territory id, 2 number of geo sets, 3 number of months, 4 how many neighbours on
# each side.
# Everything the territory page shows about its category, in one read: national rank and
# size, rank within each région/département, current entry, link, watermark, rank in the
# latest edition, per published month its rank, entry and the edition's size, and in each
# scope the neighbours around the territory (a window of ids from the first one's position,
# their national ranks, 0-based, and their entries; the territory itself included).
_READ_TERRITORY: Final = """
local id = ARGV[1]
local ngeo, nmonths, width = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local nrank = redis.call('ZRANK', KEYS[1], id)
local function around(ids, nranks)
  local entries = {}
  if #ids > 0 then entries = redis.call('HMGET', KEYS[2], unpack(ids)) end
  return {ids, nranks, entries}
end
local national = false
if nrank then
  local first = math.max(0, nrank - width)
  local ids = redis.call('ZRANGE', KEYS[1], first, nrank + width)
  local nranks = {}
  for i = 1, #ids do nranks[i] = first + i - 1 end
  national = {first + 1, around(ids, nranks)}
end
local geo = {}
for g = 1, ngeo do
  local key = KEYS[6 + g]
  local within = redis.call('ZINTER', 2, KEYS[1], key, 'WEIGHTS', 1, 0)
  local position = false
  if nrank then
    for i, member in ipairs(within) do
      if member == id then position = i break end
    end
  end
  local window = false
  if position then
    local first = math.max(1, position - width)
    local ids, nranks = {}, {}
    for i = first, math.min(#within, position + width) do
      ids[#ids + 1] = within[i]
      nranks[#nranks + 1] = redis.call('ZRANK', KEYS[1], within[i])
    end
    window = {first, around(ids, nranks)}
  end
  geo[g] = {position, #within, window}
end
local history = {}
for m = 1, nmonths do
  local rank_key, entry_key = KEYS[6 + ngeo + 2 * m - 1], KEYS[6 + ngeo + 2 * m]
  history[m] = {redis.call('ZSCORE', rank_key, id) or false,
                redis.call('HGET', entry_key, id) or false,
                redis.call('ZCARD', rank_key)}
end
return {nrank or false, redis.call('ZCARD', KEYS[1]), redis.call('HGET', KEYS[2], id) or false,
        redis.call('HGET', KEYS[3], id) or false, redis.call('HGET', KEYS[4], 'as_of') or false,
        redis.call('ZSCORE', KEYS[5], id) or false, redis.call('GET', KEYS[6]) or false,
        geo, history, national}
"""


class StandingsRow(NamedTuple):
    """One ranked territory of a scorer view, with its national rank and link status.

    A tuple, not a dataclass: a page builds up to 500 of them per request."""

    territory_id: str
    national_rank: int
    raw: bytes  # the stored entry, as read (services/common/view/entries.py)
    link_status: str | None
    published_rank: int | None = None  # rank in the latest published edition

    @property
    def entry(self) -> StoredEntry:
        """The stored entry, decoded (readers that cache by `raw` decode only on a miss)."""
        return decode_entry(self.raw)


@dataclass(frozen=True, slots=True)
class StandingsPage:
    """A slice of a scorer view with the total after filters and the watermark it reflects."""

    total: int
    as_of: str | None
    rows: list[StandingsRow]
    latest_edition: str | None = None  # the published edition `movement` is measured from
    seq: int | None = None  # the category's last rank-change seq (current view only)


@dataclass(frozen=True, slots=True)
class PublishedPage:
    """A slice of a published edition: entries as in `obs.editions.v1` `standings[]` (the
    contract's objects, served as published: see docs/decisions.md, "Typed stored values")."""

    total: int
    published_at: str | None
    rows: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class EditionPage:
    """A month of a category: published (immutable) or provisional (the scorer's view)."""

    status: Literal["published", "provisional"]
    published: PublishedPage | None = None
    provisional: StandingsPage | None = None


@dataclass(frozen=True, slots=True)
class CategorySummary:
    """What the home page shows of a category's live standings (`category` set by the
    caller, which knows which call this was)."""

    total: int
    leaders: list[StandingsRow]
    as_of: str | None
    latest_edition: str | None
    seq: int | None
    category: str = ""


@dataclass(frozen=True, slots=True)
class CurrentReply:
    """READ_CURRENT's reply as read: equal replies make equal pages, so a reader may cache a
    rendered page by it and decode (`page`) only on a miss."""

    raw: list[Any]

    def page(self, *, current: bool = True) -> StandingsPage:
        raw = self.raw
        return _view_page(raw[:7], raw[7], raw[8] if current else None)

    @property
    def missing(self) -> bool:
        """No view at all (no watermark applied): empty, or a generation dropped."""
        return not self.raw[1]


class Neighbour(NamedTuple):
    """A territory of a scope's window: its rank in the scope and nationally, its entry."""

    territory_id: str
    rank: int  # 1-based, within the scope
    national_rank: int  # 1-based
    raw: bytes  # the stored entry, as read

    @property
    def entry(self) -> StoredEntry:
        return decode_entry(self.raw)


@dataclass(frozen=True, slots=True)
class Around:
    """The ranked territories around the territory in one scope (itself excluded), in rank
    order: up to the window's width above, and below."""

    above: list[Neighbour]
    below: list[Neighbour]


@dataclass(frozen=True, slots=True)
class GeoRank:
    """The territory's position within one région/département group (None: not ranked)."""

    position: int | None
    total: int
    around: Around | None = None  # None when not ranked


@dataclass(frozen=True, slots=True)
class MonthRank:
    """The territory in one published month: its rank, its published entry, the size."""

    rank: int | None
    entry: dict[str, Any] | None  # `obs.editions.v1` `standings[]` entry
    total: int


@dataclass(frozen=True, slots=True)
class TerritoryReply:
    """READ_TERRITORY's reply: everything the territory page shows about its category."""

    national_rank: int | None  # 1-based
    size: int
    entry: bytes | None
    link_status: str | None
    as_of: str | None
    published_rank: int | None
    latest_edition: str | None
    geo: list[GeoRank]  # in the order of the geo keys given
    history: list[MonthRank]  # in the order of the months given
    around: Around | None = None  # national neighbours; None when not ranked


def _view_rows(ids: list, entries: list, nranks: list, links: list, before: list) -> list:
    return [
        StandingsRow(
            territory_id=tid.decode(),
            national_rank=int(nrank) + 1,
            raw=entry,
            link_status=text(link),
            published_rank=integer(prev),
        )
        for tid, entry, nrank, link, prev in zip(ids, entries, nranks, links, before, strict=True)
        if entry is not None
    ]


def _view_page(raw: list, latest: Any, seq: Any = None) -> StandingsPage:
    total, as_of, ids, entries, nranks, links, before = raw
    return StandingsPage(
        total=int(total),
        as_of=text(as_of) or None,
        rows=_view_rows(ids, entries, nranks, links, before),
        latest_edition=text(latest),
        seq=integer(seq),
    )


def _published_page(raw: list) -> PublishedPage:
    total, published_at, _ids, entries = raw
    rows = [orjson.loads(entry) for entry in entries if entry is not None]
    return PublishedPage(int(total), text(published_at), rows)


def _edition(reply: list[Any]) -> EditionPage:
    status, raw, latest = reply
    if status == b"published":
        return EditionPage("published", published=_published_page(raw))
    return EditionPage("provisional", provisional=_view_page(raw, latest))


def _summary(reply: list[Any]) -> CategorySummary:
    total, ids, entries, links, as_of, latest, seq = reply
    rows = [
        StandingsRow(tid.decode(), position, entry, text(link))
        for position, (tid, entry, link) in enumerate(
            zip(ids, entries, links, strict=True), start=1
        )
        if entry is not None
    ]
    return CategorySummary(int(total), rows, text(as_of), text(latest), integer(seq))


def _around(window: Any, position: int | None) -> Around | None:
    """A scope's window (first position, [ids, national ranks, entries]) split around the
    territory at `position`; ids without an entry are left out."""
    if not window or position is None:
        return None
    first, (ids, nranks, entries) = window
    above: list[Neighbour] = []
    below: list[Neighbour] = []
    for rank, (tid, nrank, raw) in enumerate(
        zip(ids, nranks, entries, strict=True), start=int(first)
    ):
        if raw is None or rank == position:
            continue
        neighbour = Neighbour(tid.decode(), rank, int(nrank) + 1, raw)
        (above if rank < position else below).append(neighbour)
    return Around(above, below)


def _territory(reply: list[Any]) -> TerritoryReply:
    nrank, size, entry, link, as_of, before, latest, geo, history, national = reply
    national_rank = None if nrank is None or nrank is False else int(nrank) + 1
    return TerritoryReply(
        national_rank=national_rank,
        size=int(size),
        entry=entry or None,
        link_status=text(link),
        as_of=text(as_of),
        published_rank=integer(before),
        latest_edition=text(latest),
        geo=[
            GeoRank(integer(position), int(total), _around(window, integer(position)))
            for position, total, window in geo
        ],
        history=[
            MonthRank(integer(rank), orjson.loads(entry) if entry else None, int(total))
            for rank, entry, total in history
        ],
        around=_around(national, national_rank),
    )


def geo_key(rk: ViewKeys, category: str, region: str | None, departement: str | None) -> str | None:
    """The membership set a région or département filter intersects with (None: no filter)."""
    if region is not None:
        return rk.geo_key(category, "reg", region)
    if departement is not None:
        return rk.geo_key(category, "dep", departement)
    return None


def _view_keys(rk: ViewKeys, category: str, edition: str | None, geo: str | None) -> list[str]:
    prefix = rk.view_prefix(category, edition)
    rank = rk.rank_key(prefix)
    return [
        rank,
        rk.entry_key(prefix),
        rk.meta_key(category),
        rk.link_status_key(category),
        geo or rank,
        rk.latest_published_rank_key(category),
        rk.latest_published_edition_key(category),
    ]


def current_keys(rk: ViewKeys, category: str, edition: str | None, geo: str | None) -> list[str]:
    """KEYS of READ_CURRENT: the current view, or a month's view as the scorer holds it."""
    return [*_view_keys(rk, category, edition, geo), rk.rank_changes_state_key(category)]


def edition_keys(rk: ViewKeys, category: str, edition: str, geo: str | None) -> list[str]:
    """KEYS of READ_EDITION."""
    return [
        *_view_keys(rk, category, edition, geo),
        rk.published_rank_key(category, edition),
        rk.published_entry_key(category, edition),
        rk.published_meta_key(category, edition),
    ]


def summary_keys(rk: ViewKeys, category: str) -> list[str]:
    """KEYS of READ_SUMMARY."""
    prefix = rk.view_prefix(category, None)
    return [
        rk.rank_key(prefix),
        rk.entry_key(prefix),
        rk.link_status_key(category),
        rk.meta_key(category),
        rk.latest_published_edition_key(category),
        rk.rank_changes_state_key(category),
    ]


def territory_keys(
    rk: ViewKeys, category: str, geo: list[tuple[str, str]], months: list[str]
) -> list[str]:
    """KEYS of READ_TERRITORY: the category's current view, then each (level, code) group,
    then each published month's rank and entry."""
    prefix = rk.view_prefix(category, None)
    keys = [
        rk.rank_key(prefix),
        rk.entry_key(prefix),
        rk.link_status_key(category),
        rk.meta_key(category),
        rk.latest_published_rank_key(category),
        rk.latest_published_edition_key(category),
        *(rk.geo_key(category, level, code) for level, code in geo),
    ]
    for month in months:
        keys += [rk.published_rank_key(category, month), rk.published_entry_key(category, month)]
    return keys


# KEYS: rank indexes of the daily history (services/common/history.py), ARGV: pairs of
# (index of the key in KEYS, a point's 5-byte entry). Returns, per pair, the entry's rank
# (1 + the entries before it) and the index's number of entries (0, 0 for a missing index).
# Binary search by GETRANGE: an index is never copied into the script.
_HISTORY_RANKS: Final = """
local function value(e)
  local a, b, c, d, f = string.byte(e, 1, 5)
  return (((a * 256 + b) * 256 + c) * 256 + d) * 256 + f
end
local out = {}
for i = 1, #ARGV, 2 do
  local k = KEYS[tonumber(ARGV[i])]
  local v = value(ARGV[i + 1])
  local n = redis.call('STRLEN', k) / 5
  local lo, hi = 0, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local e = redis.call('GETRANGE', k, mid * 5, mid * 5 + 4)
    if value(e) < v then lo = mid + 1 else hi = mid end
  end
  out[#out + 1] = n > 0 and lo + 1 or 0
  out[#out + 1] = n
end
return out
"""


def _pairs(reply: list[Any]) -> list[tuple[int, int]]:
    return [(int(reply[i]), int(reply[i + 1])) for i in range(0, len(reply), 2)]


def history_rank_keys(rk: ViewKeys, category: str, days: list[int], weeks: list[int]) -> list[str]:
    """KEYS of HISTORY_RANKS: the rank indexes of some days and weeks of one category."""
    return [
        *(rk.history_day_key(category, day) for day in days),
        *(rk.history_week_key(category, week) for week in weeks),
    ]


READ_CURRENT: Final = Script("read_current", _READ_CURRENT, CurrentReply)
READ_EDITION: Final = Script("read_edition", _READ_EDITION, _edition)
READ_SUMMARY: Final = Script("read_summary", _READ_SUMMARY, _summary)
READ_TERRITORY: Final = Script("read_territory", _READ_TERRITORY, _territory)
HISTORY_RANKS: Final = Script("history_ranks", _HISTORY_RANKS, _pairs)
