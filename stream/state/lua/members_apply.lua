--! keys: trend count ...
--! args: ...
-- Applies membership transitions to one segment: its member buckets, its
-- member count and its trend hash (all {segment_id}-tagged). Hash-field
-- operations make a replay harmless: only a real change moves the count and
-- the day's entered/exited counters, so neither ever double-counts.
-- KEYS[3..]: the member buckets the transitions touch.
-- ARGV: op, bucket, user_id, day, ...  (op "1" enter, "0" exit; bucket: the
-- index in KEYS of the user's bucket)
-- Returns {flags, totals}: 1/0 per transition (changed or not), then for each
-- day whose counters moved: day, entered, exited (the trend changelog's values).
local trend, count = KEYS[1], KEYS[2]
local flags, moved, totals = {}, {}, {}
local delta = 0
for i = 1, #ARGV, 4 do
  local op, bucket, uid, day = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
  local changed
  if op == '1' then
    changed = redis.call('HSETNX', bucket, uid, '')
    if changed == 1 then redis.call('HINCRBY', trend, 'e:' .. day, 1); delta = delta + 1 end
  else
    changed = redis.call('HDEL', bucket, uid)
    if changed == 1 then redis.call('HINCRBY', trend, 'x:' .. day, 1); delta = delta - 1 end
  end
  if changed == 1 and not moved[day] then
    moved[day] = true
    totals[#totals + 1] = day
  end
  flags[#flags + 1] = changed
end
if delta ~= 0 then redis.call('INCRBY', count, delta) end
local out = {}
for _, day in ipairs(totals) do
  local ex = redis.call('HMGET', trend, 'e:' .. day, 'x:' .. day)
  out[#out + 1] = day
  out[#out + 1] = ex[1] or '0'
  out[#out + 1] = ex[2] or '0'
end
return {flags, out}
