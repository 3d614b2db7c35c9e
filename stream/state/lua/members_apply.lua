-- Applies membership transitions to one segment (KEYS[1] member set,
-- KEYS[2] trend hash; both {segment_id}-tagged). Set operations make a replay
-- harmless: only a real change moves the day's entered/exited counters, so
-- the trend never double-counts. Returns 1/0 per transition: changed or not.
-- ARGV: op, user_id, day, op, user_id, day, ...  (op "1" enter, "0" exit)
local out = {}
for i = 1, #ARGV, 3 do
  local changed
  if ARGV[i] == '1' then
    changed = redis.call('SADD', KEYS[1], ARGV[i + 1])
    if changed == 1 then redis.call('HINCRBY', KEYS[2], 'e:' .. ARGV[i + 2], 1) end
  else
    changed = redis.call('SREM', KEYS[1], ARGV[i + 1])
    if changed == 1 then redis.call('HINCRBY', KEYS[2], 'x:' .. ARGV[i + 2], 1) end
  end
  out[#out + 1] = changed
end
return out
