--! keys: resume
--! args: token expected run_id ...
-- Moves a partition's resume point (the next input offset per topic whose
-- effects are all in Redis) if it is still the one this writer left there,
-- on the same Redis process the writer checked its effects on.
-- The hash holds `w` (the writer's token for the last advance) and one field
-- per topic. A Redis that came back older (AOF loss, a restore) or another
-- owner holds a different token: nothing is written and the current fields
-- come back, so the caller replays from where Redis really is. A Redis that
-- restarted since the caller's last check (another run_id) writes nothing
-- either: the caller's effects may have died with the old process.
-- ARGV: token, expected token ("*": any), run_id ("*": any), then topic, offset pairs.
-- Returns {1} when written, {-1, run_id} after a restart, else {0, field, value, ...}.
local resume = KEYS[1]
local token, expected, run_id = ARGV[1], ARGV[2], ARGV[3]
if run_id ~= '*' then
  local now = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
  if now ~= run_id then return {-1, now} end
end
local current = redis.call('HGET', resume, 'w')
if expected ~= '*' and current ~= expected then
  local out = {0}
  local all = redis.call('HGETALL', resume)
  for i = 1, #all do out[#out + 1] = all[i] end
  return out
end
for i = 4, #ARGV, 2 do
  redis.call('HSET', resume, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', resume, 'w', token)
return {1}
