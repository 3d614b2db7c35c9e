-- Commits one user's new state if nobody wrote it since it was read.
-- The dedupe marks go in with the state change, in one atomic step, so an
-- event applied twice counts once (KEYS[1] user hash, KEYS[2] dedupe set:
-- both carry the {user_id} tag, one slot).
-- ARGV: expected_version, dedupe_ttl, n_set, field, value, ..., n_del, field, ..., event_id, ...
-- Returns 1 written, 0 version conflict, -1 an event id was applied before
-- (the caller read without checking, to save a command per user: it must
-- reload with the dedupe lookup and redo).
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then return 0 end
local n_set = tonumber(ARGV[3])
local del_at = 4 + 2 * n_set
local n_del = tonumber(ARGV[del_at])
local ids_at = del_at + 1 + n_del
for j = ids_at, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[j]) == 1 then return -1 end
end
for j = 0, n_set - 1 do
  redis.call('HSET', KEYS[1], ARGV[4 + 2 * j], ARGV[5 + 2 * j])
end
for j = 0, n_del - 1 do
  redis.call('HDEL', KEYS[1], ARGV[del_at + 1 + j])
end
if ids_at <= #ARGV then
  for j = ids_at, #ARGV do redis.call('SADD', KEYS[2], ARGV[j]) end
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
end
redis.call('HSET', KEYS[1], 'v', tonumber(ARGV[1]) + 1)
return 1
