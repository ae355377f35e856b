"""The scorer's scripts: every write to a standings view is one atomic compare-and-set.

A version is 37 bytes (services.common.view.entries.entry_version): the observed_at epoch
(offset, 5 bytes big-endian) then the 32 bytes of the event id, so that comparing versions
byte by byte is the contract's order: later `observed_at` wins, equal `observed_at` → the
greater `event_id` wins. Stored values start with their version. Versions are compared with
`string.byte`, never with Lua's `<` on strings (which follows the server's collation locale).

A territory's account link, in its category's slot (`obs:{cat:<c>}:accounts`), is the
authority every standings write checks: an entry is written only if it carries the link the
territory has at that moment, and a link changes in the same script that removes the
territory's entries (services/scorer/standings.py gives the argument why that converges).
Links are stored as `<record version: 8 bytes big-endian><account link>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from services.common.view.entries import EPOCH_BYTES, EPOCH_OFFSET, VERSION_BYTES
from services.common.view.keys import ViewKeys
from services.common.view.scripts import Script

_OLDER: Final = f"""
local function older(stored, ver)
  for i = 1, {VERSION_BYTES} do
    local a, b = string.byte(stored, i), string.byte(ver, i)
    if a ~= b then return (a or -1) < (b or -1) end
  end
  return false
end
local function link_of(stored)
  return string.sub(stored, 9)
end
local function epoch_of(stored)
  local e = 0
  for i = 1, {EPOCH_BYTES} do e = e * 256 + string.byte(stored, i) end
  return e - {EPOCH_OFFSET}
end
"""

# KEYS[1] the account's bucket HASH (services.common.view.keys.summaries_key); ARGV[1] the
# account's field (its handle); ARGV[2] the frozen months' 3-byte codes, concatenated; then
# month records `<month code><version><summary>`. The field holds `<length><record>` per month
# in month order (services.common.view.entries). Each month's record is replaced only by a
# newer version. Frozen months are dropped, except the newest month (the account's current
# summary): nothing is derived from them again. Returns how many months were set.
_ACCOUNT_CAS: Final = (
    _OLDER
    + """
local function code_number(code)
  return string.byte(code, 1) * 65536 + string.byte(code, 2) * 256 + string.byte(code, 3)
end
local records, numbers = {}, {}
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local at = 1
  while at <= #old do
    local size = string.byte(old, at)
    local record = string.sub(old, at + 1, at + size)
    local number = code_number(record)
    records[number] = record
    numbers[#numbers + 1] = number
    at = at + 1 + size
  end
end
local set = 0
for i = 3, #ARGV do
  local record = ARGV[i]
  local number = code_number(record)
  local held = records[number]
  if not held then
    numbers[#numbers + 1] = number
  end
  if (not held) or older(string.sub(held, 4), string.sub(record, 4)) then
    records[number] = record
    set = set + 1
  end
end
if set == 0 then return 0 end
local frozen = {}
for j = 1, #ARGV[2], 3 do frozen[code_number(string.sub(ARGV[2], j, j + 2))] = true end
table.sort(numbers)
local out = {}
for j = 1, #numbers do
  local number = numbers[j]
  if j == #numbers or not frozen[number] then
    out[#out + 1] = string.char(#records[number]) .. records[number]
  end
end
redis.call('HSET', KEYS[1], ARGV[1], table.concat(out))
return set
"""
)

# KEYS[1] rank ZSET, KEYS[2] entry HASH (values `<version>…`), KEYS[3] the category's meta
# HASH (field `oldest`: a lower bound of the observed_at epochs ranked in the current view,
# which lets the inactivity sweep skip its scan; field `cutoff`: the highest cutoff a sweep
# applied), KEYS[4] the view's frozen marker (edition views: set by the publisher when it
# publishes the month; checked here, atomically with the writes, so a batch in flight can
# never touch a published month), KEYS[5] the category's account links.
# ARGV[1] cutoff epoch ("" = no eligibility rule: edition views), then groups of
# (id, version, observed epoch, negated score, entry, account link the entry carries).
# An entry is written only if its territory's link is the entry's link (a writer holding an
# older mapping, or a territory no longer mapped, writes nothing) and its version is newer
# than the stored entry's. A current entry is ranked when its epoch is at least the greater of
# ARGV[1] and the last sweep's cutoff: a writer that read an older watermark cannot rank what
# a newer sweep has already unranked.
# Returns a flat list of (id, "ranked" | "inactive") for every entry written, or
# {"frozen"} when the view is frozen.
_APPLY_ENTRIES: Final = (
    _OLDER
    + """
if redis.call('EXISTS', KEYS[4]) == 1 then return {'frozen'} end
local cutoff = nil
local oldest = nil
if ARGV[1] ~= '' then
  cutoff = tonumber(ARGV[1])
  local swept = tonumber(redis.call('HGET', KEYS[3], 'cutoff'))
  if swept and swept > cutoff then cutoff = swept end
  oldest = tonumber(redis.call('HGET', KEYS[3], 'oldest'))
end
local lowest = nil
local out = {}
for i = 2, #ARGV, 6 do
  local id, ver = ARGV[i], ARGV[i + 1]
  local link = redis.call('HGET', KEYS[5], id)
  local newer = false
  if link and link_of(link) == ARGV[i + 5] then
    local old = redis.call('HGET', KEYS[2], id)
    newer = (not old) or older(old, ver)
  end
  if newer then
    redis.call('HSET', KEYS[2], id, ARGV[i + 4])
    local epoch = tonumber(ARGV[i + 2])
    if (not cutoff) or epoch >= cutoff then
      redis.call('ZADD', KEYS[1], ARGV[i + 3], id)
      if cutoff and ((not lowest) or epoch < lowest) then lowest = epoch end
      out[#out + 1] = id
      out[#out + 1] = 'ranked'
    else
      redis.call('ZREM', KEYS[1], id)
      out[#out + 1] = id
      out[#out + 1] = 'inactive'
    end
  end
end
if lowest and ((not oldest) or lowest < oldest) then
  redis.call('HSET', KEYS[3], 'oldest', lowest)
end
return out
"""
)

# KEYS[1] the category's account links HASH, KEYS[2] its SET of months with edition entries,
# KEYS[3] current rank ZSET, KEYS[4] current entry HASH, then per declared month: its rank
# ZSET, entry HASH and frozen marker. ARGV[1] the number n of declared months, ARGV[2..n+1]
# the months, then groups of (territory id, record version: 8 bytes big-endian, account link).
# Sets each territory's link unless the stored one has a version at least as new (an older or
# redelivered record changes nothing); when the link changes, removes the territory's entries
# from the current view and every unfrozen month view, in the same step, so that no entry of
# the old account can outlive it. Returns {"retry", month…} when the category has edition
# months that were not declared (nothing done: call again with them), else a flat list of
# (id, entry) for the current entries removed.
_SET_LINKS: Final = (
    _OLDER
    + """
local n = tonumber(ARGV[1])
local declared = {}
for i = 1, n do declared[ARGV[1 + i]] = true end
local missing = {'retry'}
for _, month in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not declared[month] then missing[#missing + 1] = month end
end
if #missing > 1 then return missing end
local function newer_record(stored, ver)
  for i = 1, 8 do
    local a, b = string.byte(stored, i), string.byte(ver, i)
    if a ~= b then return a < b end
  end
  return false
end
local out = {}
for i = n + 2, #ARGV, 3 do
  local id, ver, link = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local stored = redis.call('HGET', KEYS[1], id)
  if (not stored) or newer_record(stored, ver) then
    redis.call('HSET', KEYS[1], id, ver .. link)
    if (not stored) or link_of(stored) ~= link then
      local entry = redis.call('HGET', KEYS[4], id)
      if entry then
        out[#out + 1] = id
        out[#out + 1] = entry
      end
      redis.call('HDEL', KEYS[4], id)
      redis.call('ZREM', KEYS[3], id)
      for j = 0, n - 1 do
        if redis.call('EXISTS', KEYS[7 + 3 * j]) == 0 then
          redis.call('HDEL', KEYS[6 + 3 * j], id)
          redis.call('ZREM', KEYS[5 + 3 * j], id)
        end
      end
    end
  end
end
return out
"""
)

# KEYS[1] the territories' accounts HASH (`obs:{meta}:accounts`), KEYS[2] the offsets of the
# records that set them, KEYS[3] the mapping's version counter. ARGV: groups of (territory id,
# record offset, account link). Sets each territory's account unless the stored offset is at
# least as new; bumps the counter when anything changed (readers cache the mapping by it).
# Returns how many territories were set.
_SET_ACCOUNTS: Final = """
local set = 0
for i = 1, #ARGV, 3 do
  local stored = tonumber(redis.call('HGET', KEYS[2], ARGV[i]))
  if (not stored) or stored < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    set = set + 1
  end
end
if set > 0 then redis.call('INCR', KEYS[3]) end
return set
"""

# KEYS[1] rank ZSET, KEYS[2] entry HASH, KEYS[3] meta HASH
# ARGV[1] cutoff epoch, ARGV[2] as_of (watermark timestamp). Unranks every territory whose
# entry is older than the cutoff and records the cutoff and the watermark the view now
# reflects; a cutoff older than the one recorded (a worker behind another) changes nothing.
# The ranked entries are scanned only when the cutoff has passed `oldest` (a lower bound of their
# epochs): in a steady stream every ranked territory is recent and the sweep costs nothing;
# each scan unranks at least the territory that set the bound, or raises the bound.
_EVICT_INACTIVE: Final = (
    _OLDER
    + """
local cutoff = tonumber(ARGV[1])
local swept = tonumber(redis.call('HGET', KEYS[3], 'cutoff'))
if swept and cutoff < swept then return {} end
local oldest = tonumber(redis.call('HGET', KEYS[3], 'oldest'))
local out = {}
if oldest and oldest < cutoff then
  local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
  local lowest = nil
  for first = 1, #ids, 1000 do
    local last = math.min(first + 999, #ids)
    local entries = redis.call('HMGET', KEYS[2], unpack(ids, first, last))
    for j = 1, #entries do
      local id = ids[first + j - 1]
      local epoch = epoch_of(entries[j])
      if epoch < cutoff then
        redis.call('ZREM', KEYS[1], id)
        out[#out + 1] = id
      elseif (not lowest) or epoch < lowest then
        lowest = epoch
      end
    end
  end
  if lowest then
    redis.call('HSET', KEYS[3], 'oldest', lowest)
  else
    redis.call('HDEL', KEYS[3], 'oldest')
  end
end
redis.call('HSET', KEYS[3], 'cutoff', cutoff, 'as_of', ARGV[2])
return out
"""
)

# KEYS[1] the watermark's ZSET (account -> its newest observed_at epoch; at most K members);
# ARGV[1] K, then pairs (account `platform:handle`, epoch): a batch's K newest accounts.
# Each account keeps its newest time (ZADD GT), then only the K newest accounts are kept
# (services/common/watermark.py says why that is exact). Returns the K-th newest time, or
# false (nil in Python) while fewer than K accounts are known.
_ADVANCE_WATERMARK: Final = """
local k = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], 'GT', ARGV[i + 1], ARGV[i])
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(k + 1))
if redis.call('ZCARD', KEYS[1]) < k then return false end
local lowest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tonumber(lowest[2])
"""


# The daily history (services/common/history.py has the stored forms and the rules).
# Points are compared byte by byte (day, second, then the figures): the later wins. Rank
# indexes are sorted strings of 5-byte entries, compared as numbers.
_HISTORY_LIB: Final = """
local function later(a, b)
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return false
end
local function day_of(p) return string.byte(p, 1) * 256 + string.byte(p, 2) end
local function week_of(day) return math.floor((day + 3) / 7) end
local function split(raw, size)
  local pts = {}
  for at = 1, #raw - size + 1, size do pts[#pts + 1] = string.sub(raw, at, at + size - 1) end
  return pts
end
-- Whether a stored series (points of `size` bytes) is as the window keeps it (nothing before
-- the oldest week, one point a week before the first daily day): points after it can then be
-- appended as they are.
local function kept_as_is(pts, size, first_day, oldest_week)
  local prev = oldest_week - 1
  for at = 1, #pts - size + 1, size do
    local d = string.byte(pts, at) * 256 + string.byte(pts, at + 1)
    local w = week_of(d)
    if w < oldest_week then return false end
    if d >= first_day then return true end
    if w <= prev then return false end
    prev = w
  end
  return true
end
-- Whether points (folded: one a day, oldest first) come after every point of a stored series
-- kept as is, the first of them daily: put() would then keep each, replacing at most the
-- stored last point (same day, earlier), and fold() would give the series and them in order.
-- The live scorer's usual case, taken without rebuilding the series.
local function appends(stored, pts, size, first_day, oldest_week)
  if #stored < size or #pts < size then return false end
  local first = string.sub(pts, 1, size)
  return day_of(first) >= first_day and later(first, string.sub(stored, -size))
    and kept_as_is(stored, size, first_day, oldest_week)
end
-- A series being changed: its points by day (`byday`, one per day).
local function state_of(pts)
  local byday = {}
  for _, q in ipairs(pts) do byday[day_of(q)] = q end
  return byday
end
local function week_max(byday, w)
  local best = nil
  for d = w * 7 - 3, w * 7 + 3 do
    local q = byday[d]
    if q and ((not best) or later(q, best)) then best = q end
  end
  return best
end
-- Put point p in a series: returns whether it was kept, the day's point it replaced and
-- the week's last point before it.
local function put(byday, p, first_day, oldest_week)
  local d = day_of(p)
  local w = week_of(d)
  if w < oldest_week then return false end
  local wmax = week_max(byday, w)
  if d >= first_day then
    local same = byday[d]
    if same and not later(p, same) then return false end
    byday[d] = p
    return true, same, wmax
  end
  if wmax and not later(p, wmax) then return false end
  for day = w * 7 - 3, w * 7 + 3 do byday[day] = nil end
  byday[d] = p
  return true, nil, wmax
end
-- The points kept under the window, by day: daily from first_day, each older week's last.
local function fold(byday, first_day, oldest_week)
  local days = {}
  for d in pairs(byday) do days[#days + 1] = d end
  table.sort(days)
  local out, last = {}, {}
  for _, d in ipairs(days) do
    local q = byday[d]
    local w = week_of(d)
    if w >= oldest_week then
      if d >= first_day then
        out[#out + 1] = q
      else
        local prev = last[w]
        if prev then
          if later(q, out[prev]) then out[prev] = q end
        else
          out[#out + 1] = q
          last[w] = #out
        end
      end
    end
  end
  return out
end
local function value(e, at)
  local a, b, c, d, f = string.byte(e, at, at + 4)
  return (((a * 256 + b) * 256 + c) * 256 + d) * 256 + f
end
local function lower(s, v)
  local lo, hi = 0, #s / 5
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if value(s, mid * 5 + 1) < v then lo = mid + 1 else hi = mid end
  end
  return lo
end
local function entry(p, ordinal)
  local units = string.byte(p, 11) * 65536 + string.byte(p, 12) * 256 + string.byte(p, 13)
  local key = 1000000 - units
  return string.char(math.floor(key / 65536), math.floor(key / 256) % 256, key % 256,
    math.floor(ordinal / 256), ordinal % 256)
end
local function sorted_entries(set)
  local list = {}
  for e in pairs(set or {}) do list[#list + 1] = e end
  table.sort(list, function(a, b) return value(a, 1) < value(b, 1) end)
  return list
end
-- Pending index changes: per key, entries to add and to remove (one cancels the other).
local ins, rem = {}, {}
local function add(k, e)
  ins[k] = ins[k] or {}
  rem[k] = rem[k] or {}
  if rem[k][e] then rem[k][e] = nil else ins[k][e] = true end
end
local function drop(k, e)
  ins[k] = ins[k] or {}
  rem[k] = rem[k] or {}
  if ins[k][e] then ins[k][e] = nil else rem[k][e] = true end
end
-- Rewrite each changed index once: its sorted entries with the removals and insertions.
local function flush_indexes()
  for k, adds in pairs(ins) do
    local s = redis.call('GET', k) or ''
    local events = {}
    for _, e in ipairs(sorted_entries(rem[k])) do
      local pos = lower(s, value(e, 1))
      if string.sub(s, pos * 5 + 1, pos * 5 + 5) == e then
        events[#events + 1] = {pos, 1, e}
      end
    end
    for _, e in ipairs(sorted_entries(adds)) do
      events[#events + 1] = {lower(s, value(e, 1)), 0, e}
    end
    if #events > 0 then
      table.sort(events, function(a, b)
        if a[1] ~= b[1] then return a[1] < b[1] end
        if a[2] ~= b[2] then return a[2] < b[2] end
        return value(a[3], 1) < value(b[3], 1)
      end)
      local out, cur = {}, 0
      for _, ev in ipairs(events) do
        if ev[1] > cur then
          out[#out + 1] = string.sub(s, cur * 5 + 1, ev[1] * 5)
          cur = ev[1]
        end
        if ev[2] == 0 then out[#out + 1] = ev[3] else cur = cur + 1 end
      end
      out[#out + 1] = string.sub(s, cur * 5 + 1)
      local result = table.concat(out)
      if #result == 0 then redis.call('DEL', k) else redis.call('SET', k, result) end
    end
  end
end
"""

# A territory's points written as sent: its first ones (every territory of a rebuild's fresh
# generation), or points of weeks after all of its stored ones (a rebuild's next weeks). Their
# entries of each index come sorted from the client, and each index takes all of the call's
# territories in one merge. `without` drops the entries of the ordinals named; `union` merges
# sorted entries into a sorted index that holds none of them: runs are copied whole, each
# run's place found by galloping from the last one.
_INDEX_MERGE: Final = """
local function without(entries, excluded)
  local out, from = {}, 1
  for at = 1, #entries, 5 do
    local hi, lo = string.byte(entries, at + 3, at + 4)
    if excluded[hi * 256 + lo] then
      if at > from then out[#out + 1] = string.sub(entries, from, at - 1) end
      from = at + 5
    end
  end
  if from <= #entries then out[#out + 1] = string.sub(entries, from) end
  return table.concat(out)
end
local function union(s, entries)
  local n, size = #s / 5, #entries
  local out, cur, at = {}, 0, 1
  while at <= size do
    local v = value(entries, at)
    local lo, hi, step = cur, cur, 1
    while hi < n and value(s, hi * 5 + 1) < v do
      lo = hi + 1
      hi = hi + step
      step = step * 2
    end
    if hi > n then hi = n end
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if value(s, mid * 5 + 1) < v then lo = mid + 1 else hi = mid end
    end
    if lo > cur then
      out[#out + 1] = string.sub(s, cur * 5 + 1, lo * 5)
      cur = lo
    end
    local stop = size + 1
    if lo < n then
      local bound = value(s, lo * 5 + 1)
      stop = at + 5
      while stop <= size and value(entries, stop) < bound do stop = stop + 5 end
    end
    out[#out + 1] = string.sub(entries, at, stop - 1)
    at = stop
  end
  out[#out + 1] = string.sub(s, cur * 5 + 1)
  return table.concat(out)
end
"""

# KEYS[1] a bucket HASH of accounts' daily points (services.common.view.keys
# `account_history_key`); ARGV[1] the first daily day, ARGV[2] the oldest week kept, ARGV[3]
# the accounts (services.scorer.store.history `_packed`), each `<handle length, 1 byte>
# <handle: its field><number of points, 2 bytes><points: 18 bytes each, folded under that
# window by services.common.history.fold_stored>`. An account with no stored points takes
# them as they are; otherwise each point replaces the day's only if later (a weekly day: the
# week's), and the account's points are folded again. Returns the number kept.
_ACCOUNT_HISTORY: Final = (
    _HISTORY_LIB
    + """
local first_day, oldest_week = tonumber(ARGV[1]), tonumber(ARGV[2])
local written = 0
local accounts, cursor = ARGV[3], 1
while cursor <= #accounts do
  local size = string.byte(accounts, cursor)
  local field = string.sub(accounts, cursor + 1, cursor + size)
  local c1, c2 = string.byte(accounts, cursor + size + 1, cursor + size + 2)
  local count = c1 * 256 + c2
  local pts = string.sub(accounts, cursor + size + 3, cursor + size + 2 + count * 18)
  cursor = cursor + size + 3 + count * 18
  local stored = redis.call('HGET', KEYS[1], field)
  if not stored then
    if #pts > 0 then
      redis.call('HSET', KEYS[1], field, pts)
      written = written + #pts / 18
    end
  elseif appends(stored, pts, 18, first_day, oldest_week) then
    if day_of(pts) == day_of(string.sub(stored, -18)) then
      stored = string.sub(stored, 1, #stored - 18)
    end
    redis.call('HSET', KEYS[1], field, stored .. pts)
    written = written + #pts / 18
  else
    local byday = state_of(split(stored, 18))
    local kept = 0
    for _, p in ipairs(split(pts, 18)) do
      if put(byday, p, first_day, oldest_week) then kept = kept + 1 end
    end
    if kept > 0 then
      redis.call('HSET', KEYS[1], field, table.concat(fold(byday, first_day, oldest_week)))
      written = written + kept
    end
  end
end
return written
"""
)

# KEYS[1] the category's history HASH (territory id -> `<link length><link><points>`), KEYS[2] its
# account links, KEYS[3] its history meta, then the rank indexes of n days and m weeks. ARGV[1] the
# first daily day and ARGV[2] the oldest week kept under the writer's watermark, ARGV[3] n, ARGV[4]
# m, ARGV[5..4+n+m] the days then the weeks of those indexes, then, per index in KEYS order, the
# entries the call's territories would put in it if their points were taken as sent
# (services.common.history.index_entries: sorted, concatenated), then the territories
# (services.scorer.store.history `_packed`), each `<id length, 1 byte><id><link length, 1 byte><the
# account link its points carry><ordinal, 2 bytes><number of points, 2 bytes><points: 13 bytes each,
# folded under the window by fold_stored>`. When the meta holds a further window (a writer with an
# older watermark), nothing is done: the reply {"window", first day, oldest week} asks for the
# points folded under that one. A territory's points are written only if its link is theirs. A
# territory with no stored history, or whose points all fall in weeks after its stored ones (stored
# as the window keeps them), takes them as they are (appended), and its entries join each index in
# one merge; otherwise each point is taken only if later than the day's point (a weekly day: than
# the week's), its entries moved in the indexes in the same step. A territory whose stored history
# was derived from another link is left alone and named in the reply: HISTORY_RESET empties it
# first.
# Returns {points written, id needing a reset…}.
_HISTORY_APPLY: Final = (
    _HISTORY_LIB
    + _INDEX_MERGE
    + """
local first_day = tonumber(ARGV[1])
local oldest_week = tonumber(ARGV[2])
local meta = redis.call('HMGET', KEYS[3], 'first_day', 'oldest_week', 'low_day', 'low_week')
local meta_day, meta_week = tonumber(meta[1]), tonumber(meta[2])
if (meta_day and meta_day > first_day) or (meta_week and meta_week > oldest_week) then
  return {'window', math.max(meta_day or first_day, first_day),
    math.max(meta_week or oldest_week, oldest_week)}
end
local low_day, low_week = tonumber(meta[3]), tonumber(meta[4])
local n, m = tonumber(ARGV[3]), tonumber(ARGV[4])
local day_keys, week_keys = {}, {}
for i = 1, n do day_keys[tonumber(ARGV[4 + i])] = KEYS[3 + i] end
for i = n + 1, n + m do week_keys[tonumber(ARGV[4 + i])] = KEYS[3 + i] end
local entries_at = 4 + n + m
local series, dirty, stale, excluded = {}, {}, {}, {}
local any_whole, any_excluded = false, false
local written = 0
local groups, cursor = ARGV[entries_at + n + m + 1], 1
while cursor <= #groups do
  local size = string.byte(groups, cursor)
  local id = string.sub(groups, cursor + 1, cursor + size)
  cursor = cursor + 1 + size
  size = string.byte(groups, cursor)
  local link = string.sub(groups, cursor + 1, cursor + size)
  cursor = cursor + 1 + size
  local o1, o2, c1, c2 = string.byte(groups, cursor, cursor + 3)
  local ordinal, count = o1 * 256 + o2, c1 * 256 + c2
  local blob = string.sub(groups, cursor + 4, cursor + 3 + count * 13)
  cursor = cursor + 4 + count * 13
  local held = redis.call('HGET', KEYS[2], id)
  local raw, before = false, ''
  if held and string.sub(held, 9) == link then
    raw = redis.call('HGET', KEYS[1], id)
    if raw and #blob > 0 and string.sub(raw, 2, 1 + string.byte(raw, 1)) == link then
      local pts = string.sub(raw, 2 + string.byte(raw, 1))
      if #pts == 0 or (week_of(day_of(blob)) > week_of(day_of(string.sub(pts, -13)))
          and kept_as_is(pts, 13, first_day, oldest_week)) then
        raw, before = false, pts
      end
    end
  end
  if held and string.sub(held, 9) == link and not raw then
    if #blob > 0 then
      redis.call('HSET', KEYS[1], id, string.char(#link) .. link .. before .. blob)
      written = written + #blob / 13
      any_whole = true
    end
  else
    excluded[ordinal] = true
    any_excluded = true
    local size = raw and string.byte(raw, 1)
    if raw and string.sub(raw, 2, 1 + size) ~= link then
      stale[id] = true
    elseif raw and appends(string.sub(raw, 2 + size), blob, 13, first_day, oldest_week) then
      local pts = string.sub(raw, 2 + size)
      local prev = string.sub(pts, -13)
      for at = 1, #blob - 12, 13 do
        local p = string.sub(blob, at, at + 12)
        local d = day_of(p)
        local w = week_of(d)
        local pd = day_of(prev)
        if pd == d then
          drop(day_keys[d], entry(prev, ordinal))
          pts = string.sub(pts, 1, #pts - 13)
        end
        add(day_keys[d], entry(p, ordinal))
        if (not low_day) or d < low_day then low_day = d end
        if week_of(pd) == w then drop(week_keys[w], entry(prev, ordinal)) end
        add(week_keys[w], entry(p, ordinal))
        if (not low_week) or w < low_week then low_week = w end
        pts = pts .. p
        prev = p
        written = written + 1
      end
      redis.call('HSET', KEYS[1], id, string.char(#link) .. link .. pts)
    elseif raw then
      local byday = state_of(split(string.sub(raw, 2 + size), 13))
      series[id] = byday
      for at = 1, #blob - 12, 13 do
        local p = string.sub(blob, at, at + 12)
        local kept, old, wmax = put(byday, p, first_day, oldest_week)
        if kept then
          local d = day_of(p)
          local w = week_of(d)
          if d >= first_day then
            local day_key = day_keys[d]
            if old then drop(day_key, entry(old, ordinal)) end
            add(day_key, entry(p, ordinal))
            if (not low_day) or d < low_day then low_day = d end
          end
          if (not wmax) or later(p, wmax) then
            local week_key = week_keys[w]
            if wmax then drop(week_key, entry(wmax, ordinal)) end
            add(week_key, entry(p, ordinal))
            if (not low_week) or w < low_week then low_week = w end
          end
          dirty[id] = link
          written = written + 1
        end
      end
    end
  end
end
for id, link in pairs(dirty) do
  redis.call('HSET', KEYS[1], id,
    string.char(#link) .. link .. table.concat(fold(series[id], first_day, oldest_week)))
end
flush_indexes()
for j = 1, any_whole and n + m or 0 do
  local entries = ARGV[entries_at + j]
  if any_excluded and #entries > 0 then entries = without(entries, excluded) end
  if #entries > 0 then
    local k = KEYS[3 + j]
    local s = redis.call('GET', k)
    if s then redis.call('SET', k, union(s, entries)) else redis.call('SET', k, entries) end
    local at = tonumber(ARGV[4 + j])
    if j <= n then
      if (not low_day) or at < low_day then low_day = at end
    elseif (not low_week) or at < low_week then
      low_week = at
    end
  end
end
if low_day then redis.call('HSET', KEYS[3], 'low_day', low_day) end
if low_week then redis.call('HSET', KEYS[3], 'low_week', low_week) end
local reply = {written}
for id in pairs(stale) do reply[#reply + 1] = id end
return reply
"""
)

# KEYS[1] the category's history HASH, KEYS[2] its account links, KEYS[3..] the rank indexes
# of the days and then the weeks the territory's stored points fall in. ARGV[1] the territory
# id, ARGV[2] its ordinal, ARGV[3] the number n of day keys, ARGV[4..3+n] those days, then the
# weeks. When the territory's stored history was derived from another account link than the
# one it has now, removes its entries from every index and the history itself (its new
# account's points are then written by HISTORY_APPLY). Returns 1 if it did, 0 if there was
# nothing to do, -1 if a stored point's index was not among KEYS (read again and retry).
_HISTORY_RESET: Final = (
    _HISTORY_LIB
    + """
local held = redis.call('HGET', KEYS[2], ARGV[1])
local link = held and string.sub(held, 9) or ''
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local size = string.byte(raw, 1)
if string.sub(raw, 2, 1 + size) == link then return 0 end
local ordinal, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local day_keys, week_keys = {}, {}
for i = 1, n do day_keys[tonumber(ARGV[3 + i])] = KEYS[2 + i] end
for i = 4 + n, #ARGV do week_keys[tonumber(ARGV[i])] = KEYS[i - 1] end
local pts = split(string.sub(raw, 2 + size), 13)
for _, p in ipairs(pts) do
  local d = day_of(p)
  if not day_keys[d] or not week_keys[week_of(d)] then return -1 end
end
for _, p in ipairs(pts) do
  local d = day_of(p)
  drop(day_keys[d], entry(p, ordinal))
  drop(week_keys[week_of(d)], entry(p, ordinal))
end
for k in pairs(rem) do ins[k] = ins[k] or {} end
flush_indexes()
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""
)

# KEYS[1] the category's history HASH, KEYS[2] its account links (history_reset_keys with no
# index). ARGV: territory ids. Returns those whose stored history was derived from another
# account link than the one they have now (HISTORY_RESET empties each); one call checks many
# territories (an account batch, or a rebuild's every territory, most with no history yet).
_HISTORY_STALE: Final = """
local stale = {}
for i = 1, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if raw then
    local held = redis.call('HGET', KEYS[2], ARGV[i])
    local link = held and string.sub(held, 9) or ''
    if string.sub(raw, 2, 1 + string.byte(raw, 1)) ~= link then stale[#stale + 1] = ARGV[i] end
  end
end
return stale
"""

# KEYS[1] the category's history meta, KEYS[2..] rank indexes that leave the window.
# ARGV[1] first daily day, ARGV[2] oldest week. Unless the stored window is further (a
# writer with an older watermark), records the window and deletes the indexes named (days
# before the first daily day, weeks before the oldest). Returns 1 if it did.
_HISTORY_TRIM: Final = """
local meta = redis.call('HMGET', KEYS[1], 'first_day', 'oldest_week')
local first_day, oldest_week = tonumber(ARGV[1]), tonumber(ARGV[2])
if meta[1] and (tonumber(meta[1]) > first_day or tonumber(meta[2]) > oldest_week) then
  return 0
end
redis.call('HSET', KEYS[1], 'first_day', first_day, 'oldest_week', oldest_week)
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""


@dataclass(frozen=True, slots=True)
class Applied:
    """What APPLY_ENTRIES wrote: (territory id, "ranked" | "inactive"), or nothing if frozen."""

    written: list[tuple[str, str]] = field(default_factory=list)
    frozen: bool = False


def _applied(reply: list[bytes]) -> Applied:
    if reply == [b"frozen"]:
        return Applied(frozen=True)
    return Applied([(reply[i].decode(), reply[i + 1].decode()) for i in range(0, len(reply), 2)])


@dataclass(frozen=True, slots=True)
class LinksSet:
    """What SET_LINKS did: the (id, entry) removed from the current view, or the edition
    months the call did not declare (then it did nothing)."""

    removed: list[tuple[str, bytes]] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)


def _links_set(reply: list[bytes]) -> LinksSet:
    if reply and reply[0] == b"retry":
        return LinksSet(undeclared=[month.decode() for month in reply[1:]])
    return LinksSet([(reply[i].decode(), reply[i + 1]) for i in range(0, len(reply), 2)])


@dataclass(frozen=True, slots=True)
class HistoryApplied:
    """What HISTORY_APPLY did: points written, and the territories whose stored history was
    derived from another account (nothing written for them: reset them, then again); or,
    with nothing done, the further window (first day, oldest week) the meta holds."""

    written: int
    stale: list[str]
    window: tuple[int, int] | None = None


def _history_applied(reply: list[Any]) -> HistoryApplied:
    if reply and reply[0] == b"window":
        return HistoryApplied(0, [], (int(reply[1]), int(reply[2])))
    return HistoryApplied(int(reply[0]), [member.decode() for member in reply[1:]])


def _ids(reply: list[bytes]) -> list[str]:
    return [member.decode() for member in reply]


def _int(reply: Any) -> int:
    return int(reply)


def _optional_int(reply: Any) -> int | None:
    return None if reply is None else int(reply)


def summaries_keys(rk: ViewKeys, platform: str, handle: str) -> list[str]:
    """KEYS of ACCOUNT_CAS."""
    return [rk.summaries_key(platform, handle)]


def _frozen_marker(rk: ViewKeys, category: str, edition: str | None) -> str:
    prefix = rk.view_prefix(category, edition)
    return rk.edition_frozen_key(category, edition) if edition else f"{prefix}:never-frozen"


def view_keys(rk: ViewKeys, category: str, edition: str | None) -> list[str]:
    """KEYS of APPLY_ENTRIES: one view, its category's meta, its marker, its account links."""
    prefix = rk.view_prefix(category, edition)
    return [
        rk.rank_key(prefix),
        rk.entry_key(prefix),
        rk.meta_key(category),
        _frozen_marker(rk, category, edition),
        rk.category_accounts_key(category),
    ]


def links_keys(rk: ViewKeys, category: str, months: list[str]) -> list[str]:
    """KEYS of SET_LINKS: the category's links, its edition months, its current view, then
    each month's view and frozen marker."""
    current = rk.view_prefix(category, None)
    keys = [
        rk.category_accounts_key(category),
        rk.edition_months_key(category),
        rk.rank_key(current),
        rk.entry_key(current),
    ]
    for month in months:
        prefix = rk.view_prefix(category, month)
        keys += [rk.rank_key(prefix), rk.entry_key(prefix), _frozen_marker(rk, category, month)]
    return keys


def accounts_keys(rk: ViewKeys) -> list[str]:
    """KEYS of SET_ACCOUNTS."""
    return [rk.ACCOUNTS_KEY, rk.ACCOUNT_OFFSETS_KEY, rk.ACCOUNTS_VERSION_KEY]


def evict_keys(rk: ViewKeys, category: str) -> list[str]:
    """KEYS of EVICT_INACTIVE: the current view and its category's meta."""
    prefix = rk.view_prefix(category, None)
    return [rk.rank_key(prefix), rk.entry_key(prefix), rk.meta_key(category)]


def history_keys(rk: ViewKeys, category: str, days: list[int], weeks: list[int]) -> list[str]:
    """KEYS of HISTORY_APPLY: the category's history, links and history meta, then the rank
    indexes of the days and weeks its points fall in."""
    return [
        rk.history_key(category),
        rk.category_accounts_key(category),
        rk.history_meta_key(category),
        *(rk.history_day_key(category, day) for day in days),
        *(rk.history_week_key(category, week) for week in weeks),
    ]


def account_history_keys(rk: ViewKeys, platform: str, handle: str) -> list[str]:
    """KEYS of ACCOUNT_HISTORY: the account's bucket (one call holds every account of a batch
    in that bucket)."""
    return [rk.account_history_key(platform, handle)]


def history_reset_keys(rk: ViewKeys, category: str, days: list[int], weeks: list[int]) -> list[str]:
    """KEYS of HISTORY_RESET: the category's history and links, then the rank indexes of the
    days and weeks of the territory's stored points."""
    return [
        rk.history_key(category),
        rk.category_accounts_key(category),
        *(rk.history_day_key(category, day) for day in days),
        *(rk.history_week_key(category, week) for week in weeks),
    ]


def history_trim_keys(rk: ViewKeys, category: str, days: list[int], weeks: list[int]) -> list[str]:
    """KEYS of HISTORY_TRIM: the category's history meta, then the indexes it deletes."""
    return [
        rk.history_meta_key(category),
        *(rk.history_day_key(category, day) for day in days),
        *(rk.history_week_key(category, week) for week in weeks),
    ]


def watermark_keys(rk: ViewKeys) -> list[str]:
    """KEYS of ADVANCE_WATERMARK."""
    return [rk.WATERMARK_KEY]


ACCOUNT_CAS: Final = Script("account_cas", _ACCOUNT_CAS, _int)  # months set
APPLY_ENTRIES: Final = Script("apply_entries", _APPLY_ENTRIES, _applied)
SET_LINKS: Final = Script("set_links", _SET_LINKS, _links_set)
SET_ACCOUNTS: Final = Script("set_accounts", _SET_ACCOUNTS, _int)  # territories set
EVICT_INACTIVE: Final = Script("evict_inactive", _EVICT_INACTIVE, _ids)  # ids unranked
ADVANCE_WATERMARK: Final = Script("advance_watermark", _ADVANCE_WATERMARK, _optional_int)
ACCOUNT_HISTORY: Final = Script("account_history", _ACCOUNT_HISTORY, _int)  # points kept
HISTORY_APPLY: Final = Script("history_apply", _HISTORY_APPLY, _history_applied)
HISTORY_RESET: Final = Script("history_reset", _HISTORY_RESET, _int)
HISTORY_STALE: Final = Script("history_stale", _HISTORY_STALE, _ids)  # ids to reset
HISTORY_TRIM: Final = Script("history_trim", _HISTORY_TRIM, _int)  # 1 if the window moved
