--! keys: members trend
--! args: ...
-- Applies membership transitions to one segment: its member set and its
-- trend hash (both {segment_id}-tagged). Set operations make a replay
-- harmless: only a real change moves the day's entered/exited counters, so
-- the trend never double-counts.
-- ARGV: op, user_id, day, op, user_id, day, ...  (op "1" enter, "0" exit)
-- Returns {flags, totals}: 1/0 per transition (changed or not), then for each
-- day whose counters moved: day, entered, exited (the trend changelog's values).
local members, trend = KEYS[1], KEYS[2]
local flags, moved, totals = {}, {}, {}
for i = 1, #ARGV, 3 do
  local op, uid, day = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local changed
  if op == '1' then
    changed = redis.call('SADD', members, uid)
    if changed == 1 then redis.call('HINCRBY', trend, 'e:' .. day, 1) end
  else
    changed = redis.call('SREM', members, uid)
    if changed == 1 then redis.call('HINCRBY', trend, 'x:' .. day, 1) end
  end
  if changed == 1 and not moved[day] then
    moved[day] = true
    totals[#totals + 1] = day
  end
  flags[#flags + 1] = changed
end
local out = {}
for _, day in ipairs(totals) do
  local ex = redis.call('HMGET', trend, 'e:' .. day, 'x:' .. day)
  out[#out + 1] = day
  out[#out + 1] = ex[1] or '0'
  out[#out + 1] = ex[2] or '0'
end
return {flags, out}
