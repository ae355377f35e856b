"""The publisher's scripts: one consistent read or one atomic write per category slot, the
lease that makes one publisher the active one, and the fencing token checked where it writes.

Fencing (docs/publisher.md, "Failover"): every slot the publisher writes (each category's and
`obs:{meta}`) holds a fence key with the highest lease token that has written or claimed it.
Each write script reads it first, in the same script: a token older than the stored one is
refused (the reply `FENCED`, nothing written), a newer one is stored (set-if-greater). A token
of 0 writes without the check (`observatoire rebuild`, the services stopped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from services.common.view.keys import PUBLISHER_LEASE_KEY, PUBLISHER_TOKENS_KEY, ViewKeys
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

FENCED: Final = "FENCED"  # a write script's reply when the writer's token is older than the slot's

# The fencing check every write script starts with: `fence` is the slot's fence key, `token` the
# writer's lease token (0: unfenced). Returns the stored token when the writer is fenced out.
_FENCE: Final = """
local function fenced(fence, token)
  token = tonumber(token)
  if token == 0 then return nil end
  local stored = tonumber(redis.call('GET', fence) or '0')
  if stored > token then return stored end
  if token > stored then redis.call('SET', fence, token) end
  return nil
end
"""

# KEYS[1] rc:state HASH, KEYS[2] rc:events ZSET, KEYS[3] rc:pending STRING, KEYS[4] the
# category's fence key. ARGV[1] seq, ARGV[2] event_id, ARGV[3] at, ARGV[4] top JSON,
# ARGV[5] scores JSON, ARGV[6] the event as produced (record value), ARGV[7] how many events
# to keep, ARGV[8] the writer's lease token.
# Records a delivered event: adds it to the recent events (one member per seq), moves the
# state forward (never back), drops a write-ahead copy it supersedes. Returns the old seq, or
# {'FENCED', stored token} when the writer's token is older than the slot's.
_COMMIT_RANK_CHANGE: Final = (
    _FENCE
    + """
local stale = fenced(KEYS[4], ARGV[8])
if stale then return {'FENCED', stale} end
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
)

# KEYS[1] HASH of offsets, KEYS[2] the meta slot's fence key; ARGV[1] field, ARGV[2] offset,
# ARGV[3] the writer's lease token. Raises the field, never lowers it. Returns 1, or
# {'FENCED', stored token}.
_ADVANCE_OFFSET: Final = (
    _FENCE
    + """
local stale = fenced(KEYS[2], ARGV[3])
if stale then return {'FENCED', stale} end
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) > current then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
"""
)

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


# KEYS[1] the slot's fence key, KEYS[2..] every key the batch writes (one slot). ARGV[1] the
# writer's lease token, then the commands, each as: its name, the index of its key in KEYS,
# how many arguments follow, the arguments. Runs them all, or none when the writer is fenced.
# Returns the number of commands run, or {'FENCED', stored token}.
_FENCED_WRITE: Final = (
    _FENCE
    + """
local stale = fenced(KEYS[1], ARGV[1])
if stale then return {'FENCED', stale} end
local i, n = 2, 0
while i <= #ARGV do
  local name, key, count = ARGV[i], KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  redis.call(name, key, unpack(ARGV, i + 3, i + 2 + count))
  i = i + 3 + count
  n = n + 1
end
return n
"""
)

# KEYS[1] the slot's fence key; ARGV[1] the new active's lease token. Claims the slot: from
# now on a write with an older token is refused. Returns the token stored (greater than
# ARGV[1] when a newer holder claimed the slot already: the caller has lost the lease).
_CLAIM_FENCE: Final = """
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[1])
if token > stored then
  redis.call('SET', KEYS[1], token)
  return token
end
return stored
"""

# KEYS[1] the lease STRING, KEYS[2] the token counter. ARGV[1] the candidate's name, ARGV[2]
# the lease's time to live (ms). Takes a free lease with the next token (INCR: tokens only
# grow, across every holder). Returns {token, value} when taken, {0, the holder's value} when
# the lease is held.
_ACQUIRE_LEASE: Final = """
local holder = redis.call('GET', KEYS[1])
if holder then return {0, holder} end
local token = redis.call('INCR', KEYS[2])
local value = token .. ' ' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', tonumber(ARGV[2]))
return {token, value}
"""

# KEYS[1] the lease STRING; ARGV[1] the holder's value (`<token> <name>`), ARGV[2] the time to
# live (ms). Extends the lease if it is still this holder's. Returns 1, or 0 when lost.
_RENEW_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""

# KEYS[1] the lease STRING; ARGV[1] the holder's value. Gives the lease up (a clean stop) if it
# is still this holder's. Returns 1 if released, 0 otherwise.
_RELEASE_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
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


def top_keys(rk: ViewKeys, category: str) -> list[str]:
    """KEYS of READ_TOP."""
    return [rk.rank_key(rk.view_prefix(category, None)), rk.meta_key(category)]


def rank_change_keys(rk: ViewKeys, category: str) -> list[str]:
    """KEYS of COMMIT_RANK_CHANGE."""
    return [
        rk.rank_changes_state_key(category),
        rk.rank_changes_events_key(category),
        rk.rank_changes_pending_key(category),
        rk.publisher_fence_key(rk.category_tag(category)),
    ]


def offsets_keys(rk: ViewKeys) -> list[str]:
    """KEYS of ADVANCE_OFFSET."""
    return [rk.PUBLISHER_OFFSETS_KEY, rk.publisher_fence_key(rk.META_TAG)]


def lease_keys() -> list[str]:
    """KEYS of ACQUIRE_LEASE (RENEW_LEASE and RELEASE_LEASE use the first)."""
    return [PUBLISHER_LEASE_KEY, PUBLISHER_TOKENS_KEY]


def fenced(reply: Any) -> int | None:
    """The stored token if a write script refused the writer (`{'FENCED', token}`), else None."""
    if isinstance(reply, list) and len(reply) == 2 and reply[0] in (FENCED, FENCED.encode()):
        return int(reply[1])
    return None


def _lease(reply: list[Any]) -> tuple[int, str]:
    token, value = reply
    return int(token), value.decode() if isinstance(value, bytes) else str(value)


def edition_view_keys(rk: ViewKeys, category: str, edition: str) -> list[str]:
    """KEYS of READ_EDITION_VIEW."""
    prefix = rk.view_prefix(category, edition)
    return [rk.rank_key(prefix), rk.entry_key(prefix), rk.link_status_key(category)]


READ_TOP: Final = Script("read_top", _READ_TOP, _top)
# Write scripts answer their reply as is: `fenced(reply)` tells a refusal (the store raises).
COMMIT_RANK_CHANGE: Final = Script("commit_rank_change", _COMMIT_RANK_CHANGE, lambda reply: reply)
ADVANCE_OFFSET: Final = Script("advance_offset", _ADVANCE_OFFSET, lambda reply: reply)
FENCED_WRITE: Final = Script("fenced_write", _FENCED_WRITE, lambda reply: reply)
CLAIM_FENCE: Final = Script("claim_fence", _CLAIM_FENCE, int)  # the token stored
ACQUIRE_LEASE: Final = Script("acquire_lease", _ACQUIRE_LEASE, _lease)  # (token or 0, value)
RENEW_LEASE: Final = Script("renew_lease", _RENEW_LEASE, bool)
RELEASE_LEASE: Final = Script("release_lease", _RELEASE_LEASE, bool)
READ_EDITION_VIEW: Final = Script("read_edition_view", _READ_EDITION_VIEW, _edition_view)
