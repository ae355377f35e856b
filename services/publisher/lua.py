"""The publisher's Redis scripts: one consistent read or one atomic write per category slot."""

from __future__ import annotations

from typing import Final

# KEYS[1] the category's current rank ZSET (scorer's view), KEYS[2] its meta HASH.
# ARGV[1] last index to read (size - 1), ARGV[2..] the previous published list.
# Returns {top ids and negated scores (flat), as_of or nil, current negated score of each
# previous id or nil}: the published list, the watermark it reflects and where the territories
# of the previous list stand now, in one read a scorer write cannot interleave.
READ_TOP: Final = """
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
COMMIT_RANK_CHANGE: Final = """
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
ADVANCE_OFFSET: Final = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) > current then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
"""

# KEYS[1] a frozen edition view's rank ZSET, KEYS[2] its entry HASH, KEYS[3] the category's
# link HASH. Returns {ids in rank order, entry JSONs, link statuses}. HMGET in chunks: Lua's
# unpack() stops at a few thousand values and petites-villes ranks tens of thousands.
READ_EDITION_VIEW: Final = """
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
