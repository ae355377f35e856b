"""The API's Redis scripts: every response about one category is one read on its slot.

The scorer's views (current, unpublished months), the publisher's published editions, link
statuses and rank-change state of a category all share the hash tag `{cat:<category>}`
(docs/redis.md), so each script below reads one consistent state that no write interleaves.
Lua's `unpack()` is only ever given a page (at most 500 ids), far below its stack limit.
"""

from __future__ import annotations

from typing import Final

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
READ_CURRENT: Final = (
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
READ_EDITION: Final = (
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
READ_SUMMARY: Final = """
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
# ARGV: 1 territory id, 2 number of geo sets, 3 number of months.
# Everything the territory page shows about its category, in one read: national rank and
# size, rank within each région/département, current entry, link, watermark, rank in the
# latest edition, and per published month its rank, entry and the edition's size.
READ_TERRITORY: Final = """
local id = ARGV[1]
local ngeo, nmonths = tonumber(ARGV[2]), tonumber(ARGV[3])
local nrank = redis.call('ZRANK', KEYS[1], id)
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
  geo[g] = {position, #within}
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
        geo, history}
"""
