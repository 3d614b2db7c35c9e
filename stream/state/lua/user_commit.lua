--! keys: user dedupe
--! args: expected_version dedupe_ttl n_set ...
-- Commits one user's new state if nobody wrote it since it was read.
-- The dedupe marks go in with the state change, in one atomic step, so an
-- event applied twice counts once (both keys carry the {user_id} tag, one slot).
-- The variadic tail: field, value (n_set pairs), n_del, field (n_del), event token...
-- Returns 1 written, 0 version conflict, -1 an event id was applied before
-- (the caller read without checking, to save a command per user: it must
-- reload with the dedupe lookup and redo).
local user_key, dedupe_key = KEYS[1], KEYS[2]
local expected_version, dedupe_ttl, n_set = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local current = redis.call('HGET', user_key, 'v') or '0'
if current ~= expected_version then return 0 end
local del_at = 4 + 2 * n_set
local n_del = tonumber(ARGV[del_at])
local ids_at = del_at + 1 + n_del
for j = ids_at, #ARGV do
  if redis.call('SISMEMBER', dedupe_key, ARGV[j]) == 1 then return -1 end
end
for j = 0, n_set - 1 do
  redis.call('HSET', user_key, ARGV[4 + 2 * j], ARGV[5 + 2 * j])
end
for j = 0, n_del - 1 do
  redis.call('HDEL', user_key, ARGV[del_at + 1 + j])
end
if ids_at <= #ARGV then
  for j = ids_at, #ARGV do redis.call('SADD', dedupe_key, ARGV[j]) end
  redis.call('EXPIRE', dedupe_key, dedupe_ttl)
end
redis.call('HSET', user_key, 'v', tonumber(expected_version) + 1)
return 1
