--! keys: resume
--! args: token expected ...
-- Moves a partition's resume point (the next input offset per topic whose
-- effects are all in Redis) if it is still the one this writer left there.
-- The hash holds `w` (the writer's token for the last advance) and one field
-- per topic. A Redis that came back older (AOF loss, a restore) or another
-- owner holds a different token: nothing is written and the current fields
-- come back, so the caller replays from where Redis really is.
-- ARGV: token, expected token ("*": any), then topic, offset pairs.
-- Returns {1} when written, else {0, field, value, ...}.
local resume = KEYS[1]
local token, expected = ARGV[1], ARGV[2]
local current = redis.call('HGET', resume, 'w')
if expected ~= '*' and current ~= expected then
  local out = {0}
  local all = redis.call('HGETALL', resume)
  for i = 1, #all do out[#out + 1] = all[i] end
  return out
end
for i = 3, #ARGV, 2 do
  redis.call('HSET', resume, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', resume, 'w', token)
return {1}
