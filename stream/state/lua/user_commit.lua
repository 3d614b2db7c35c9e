--! keys: user
--! args: expected_version n_set ...
-- Commits one user's new state if nobody wrote it since it was read.
-- The dedupe window is a field of the same hash (`d`), so the version check
-- also says the window the worker searched is the one stored: "applied" and
-- "marked" are written together and cannot diverge.
-- The variadic tail: field, value (n_set pairs), then the fields to delete.
-- Returns 1 written, 0 version conflict.
local user_key = KEYS[1]
local expected_version, n_set = ARGV[1], tonumber(ARGV[2])
local current = redis.call('HGET', user_key, 'v') or '0'
if current ~= expected_version then return 0 end
for j = 0, n_set - 1 do
  redis.call('HSET', user_key, ARGV[3 + 2 * j], ARGV[4 + 2 * j])
end
for j = 3 + 2 * n_set, #ARGV do
  redis.call('HDEL', user_key, ARGV[j])
end
redis.call('HSET', user_key, 'v', tonumber(expected_version) + 1)
return 1
