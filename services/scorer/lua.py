"""The scorer's Redis scripts: every write to a standings view is one atomic compare-and-set.

A version is `%010d:<event_id>` (observed_at epoch zero-padded, then the event id), so that
comparing versions as strings is the contract's order: later `observed_at` wins, equal
`observed_at` → the greater `event_id` wins.
"""

from __future__ import annotations

from typing import Final

# KEYS[1] account HASH; then groups of (field, version, `<version>|<summary>`): each field
# (`cur`, `m:YYYY-MM`) is set only if its stored version is older. Returns how many were set.
ACCOUNT_CAS: Final = """
local set = 0
for i = 1, #ARGV, 3 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  local newer = true
  if old then
    local sep = string.find(old, '|', 1, true)
    newer = not (sep and string.sub(old, 1, sep - 1) >= ARGV[i + 1])
  end
  if newer then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    set = set + 1
  end
end
return set
"""

# KEYS[1] rank ZSET, KEYS[2] entry HASH (values `<version>|…`), KEYS[3] seen ZSET,
# KEYS[4] the view's frozen marker (edition views: set by the publisher when it publishes the
# month; checked here, atomically with the writes, so a batch in flight can never touch a
# published month).
# ARGV[1] cutoff epoch ("" = no eligibility rule: edition views), ARGV[2] force ("1": a
# re-derivation after a handle change replaces whatever is there), then groups of
# (id, version, observed epoch, negated score, entry).
# Returns a flat list of (id, "ranked" | "inactive") for every entry written, or
# {"frozen"} when the view is frozen.
APPLY_ENTRIES: Final = """
if redis.call('EXISTS', KEYS[4]) == 1 then return {'frozen'} end
local cutoff = ARGV[1]
local force = ARGV[2] == '1'
local out = {}
for i = 3, #ARGV, 5 do
  local id, ver = ARGV[i], ARGV[i + 1]
  local newer = force
  if not newer then
    local old = redis.call('HGET', KEYS[2], id)
    newer = (not old) or string.sub(old, 1, string.find(old, '|', 1, true) - 1) < ver
  end
  if newer then
    redis.call('HSET', KEYS[2], id, ARGV[i + 4])
    local epoch = tonumber(ARGV[i + 2])
    if cutoff == '' or epoch >= tonumber(cutoff) then
      redis.call('ZADD', KEYS[1], ARGV[i + 3], id)
      if cutoff ~= '' then redis.call('ZADD', KEYS[3], epoch, id) end
      out[#out + 1] = id
      out[#out + 1] = 'ranked'
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[3], id)
      out[#out + 1] = id
      out[#out + 1] = 'inactive'
    end
  end
end
return out
"""

# Same KEYS as APPLY_ENTRIES; ARGV: territory ids to drop from the view entirely.
# Returns a flat list of (id, entry) for the entries removed (none if frozen).
REMOVE_ENTRIES: Final = """
if redis.call('EXISTS', KEYS[4]) == 1 then return {} end
local out = {}
for i = 1, #ARGV do
  local entry = redis.call('HGET', KEYS[2], ARGV[i])
  if entry then
    out[#out + 1] = ARGV[i]
    out[#out + 1] = entry
  end
  redis.call('HDEL', KEYS[2], ARGV[i])
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[3], ARGV[i])
end
return out
"""

# KEYS[1] rank ZSET, KEYS[2] seen ZSET, KEYS[3] meta HASH
# ARGV[1] cutoff epoch, ARGV[2] as_of (watermark timestamp). Unranks every territory whose
# entry is older than the cutoff and records the watermark the view now reflects.
EVICT_INACTIVE: Final = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
redis.call('HSET', KEYS[3], 'as_of', ARGV[2])
return ids
"""

# KEYS[1] watermark STRING; ARGV[1] candidate epoch. Returns the watermark after the update.
ADVANCE_WATERMARK: Final = """
local old = tonumber(redis.call('GET', KEYS[1]) or '-1')
local new = tonumber(ARGV[1])
if new > old then
  redis.call('SET', KEYS[1], ARGV[1])
  return new
end
return old
"""
