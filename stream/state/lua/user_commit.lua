-- Commits one user's new state if nobody wrote it since it was read.
-- The dedupe marks go in with the state change, in one atomic step, so an
-- event applied twice counts once (KEYS[1] user hash, KEYS[2] dedupe set:
-- both carry the {user_id} tag, one slot).
-- ARGV: expected_version, dedupe_ttl, n_set, field, value, ..., n_del, field, ..., event_id, ...
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then return 0 end
local i = 3
local n_set = tonumber(ARGV[i]); i = i + 1
for j = 0, n_set - 1 do
  redis.call('HSET', KEYS[1], ARGV[i + 2 * j], ARGV[i + 2 * j + 1])
end
i = i + 2 * n_set
local n_del = tonumber(ARGV[i]); i = i + 1
for j = 0, n_del - 1 do
  redis.call('HDEL', KEYS[1], ARGV[i + j])
end
i = i + n_del
if i <= #ARGV then
  for j = i, #ARGV do redis.call('SADD', KEYS[2], ARGV[j]) end
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
end
redis.call('HSET', KEYS[1], 'v', tonumber(ARGV[1]) + 1)
return 1
