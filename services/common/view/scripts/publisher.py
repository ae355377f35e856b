"""The publisher's scripts: one consistent read or one atomic write per category slot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from services.common.view import keys as rk
from services.common.view.scripts import Script, text

# KEYS[1] the category's current rank ZSET (scorer's view), KEYS[2] its meta HASH.
# ARGV[1] last index to read (size - 1), ARGV[2..] the previous published list.
# Returns {top ids and negated scores (flat), as_of or nil, current negated score of each
# previous id or nil}: the published list, the watermark it reflects and where the territories
# of the previous list stand now, in one read a scorer write cannot interleave.
_READ_TOP: Final = """
local top = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]), 'WITHSCORES')
local as_of = redis.call('HGET', KEYS[2], 'as_of')
local previous = {}
for i = 2, #ARGV do
  previous[#previous + 1] = redis.call('ZSCORE', KEYS[1], ARGV[i]) or false
end
return {top, as_of or false, previous}
"""

# KEYS[1] rc:state HASH, KEYS[2] rc:events ZSET, KEYS[3] rc:pending STRING.
# ARGV[1] seq, ARGV[2] event_id, ARGV[3] at, ARGV[4] top JSON, ARGV[5] scores JSON,
# ARGV[6] the event as produced (record value), ARGV[7] how many events to keep.
# Records a delivered event: adds it to the recent events (one member per seq), moves the
# state forward (never back), drops a write-ahead copy it supersedes. Returns the old seq.
_COMMIT_RANK_CHANGE: Final = """
local seq = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
redis.call('ZREMRANGEBYSCORE', KEYS[2], seq, seq)
redis.call('ZADD', KEYS[2], seq, ARGV[6])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[7]) + 1))
if seq > current then
  redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'event_id', ARGV[2], 'at', ARGV[3],
             'top', ARGV[4], 'scores', ARGV[5])
end
local pending = redis.call('GET', KEYS[3])
if pending and tonumber(cjson.decode(pending)['seq']) <= seq then
  redis.call('DEL', KEYS[3])
end
return current
"""

# KEYS[1] HASH of offsets; ARGV[1] field, ARGV[2] offset. Raises the field, never lowers it.
_ADVANCE_OFFSET: Final = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) > current then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
"""

# KEYS[1] a frozen edition view's rank ZSET, KEYS[2] its entry HASH, KEYS[3] the category's
# link HASH. Returns {ids in rank order, stored entries, link statuses}. HMGET in chunks: Lua's
# unpack() stops at a few thousand values and petites-villes ranks tens of thousands.
_READ_EDITION_VIEW: Final = """
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local entries, links = {}, {}
for i = 1, #ids, 1000 do
  local chunk = {}
  for j = i, math.min(i + 999, #ids) do chunk[#chunk + 1] = ids[j] end
  local e = redis.call('HMGET', KEYS[2], unpack(chunk))
  local l = redis.call('HMGET', KEYS[3], unpack(chunk))
  for j = 1, #chunk do
    entries[#entries + 1] = e[j]
    links[#links + 1] = l[j]
  end
end
return {ids, entries, links}
"""


def _score(negated: bytes | str | float) -> float:
    # The rank ZSET holds -score; `+ 0.0` turns a -0.0 into 0.0.
    return -float(negated) + 0.0


@dataclass(frozen=True, slots=True)
class TopReply:
    """READ_TOP's reply: the first ids with their scores, the watermark the view reflects, and
    the current score of each territory of the previous list (None: no longer ranked)."""

    top: list[tuple[str, float]]
    as_of: str | None
    previous: list[float | None]


def _top(reply: list[Any]) -> TopReply:
    flat, as_of, previous = reply
    top = [(flat[i].decode(), _score(flat[i + 1])) for i in range(0, len(flat), 2)]
    return TopReply(top, text(as_of) or None, [None if s is None else _score(s) for s in previous])


@dataclass(frozen=True, slots=True)
class ViewRow:
    """One territory of a frozen month's view, in rank order, with its link status now."""

    territory_id: str
    entry: bytes  # services/common/view/entries.py
    link_status: str | None


def _edition_view(reply: list[Any]) -> list[ViewRow]:
    ids, entries, links = reply
    return [
        ViewRow(tid.decode(), entry, text(link))
        for tid, entry, link in zip(ids, entries, links, strict=True)
        if entry is not None
    ]


def top_keys(category: str) -> list[str]:
    """KEYS of READ_TOP."""
    return [rk.rank_key(rk.view_prefix(category, None)), rk.meta_key(category)]


def rank_change_keys(category: str) -> list[str]:
    """KEYS of COMMIT_RANK_CHANGE."""
    return [
        rk.rank_changes_state_key(category),
        rk.rank_changes_events_key(category),
        rk.rank_changes_pending_key(category),
    ]


def offsets_keys() -> list[str]:
    """KEYS of ADVANCE_OFFSET."""
    return [rk.PUBLISHER_OFFSETS_KEY]


def edition_view_keys(category: str, edition: str) -> list[str]:
    """KEYS of READ_EDITION_VIEW."""
    prefix = rk.view_prefix(category, edition)
    return [rk.rank_key(prefix), rk.entry_key(prefix), rk.link_status_key(category)]


READ_TOP: Final = Script("read_top", _READ_TOP, _top)
COMMIT_RANK_CHANGE: Final = Script("commit_rank_change", _COMMIT_RANK_CHANGE, int)  # old seq
ADVANCE_OFFSET: Final = Script("advance_offset", _ADVANCE_OFFSET, lambda _reply: None)
READ_EDITION_VIEW: Final = Script("read_edition_view", _READ_EDITION_VIEW, _edition_view)
