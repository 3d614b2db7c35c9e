--! keys: bucket
--! args: op value user_id
-- Adds or removes one user under one identity value in a bucket of the
-- identity index (a hash: field = email or phone value, value = JSON list of
-- user ids; one {bucket} tag, one slot). Many values share a bucket so Redis
-- keeps them in a listpack instead of one key per value. op is "+" or "-".
local bucket = KEYS[1]
local op, value, user_id = ARGV[1], ARGV[2], ARGV[3]
local raw = redis.call('HGET', bucket, value)
local ids = raw and cjson.decode(raw) or {}
local at = nil
for i, uid in ipairs(ids) do
  if uid == user_id then at = i end
end
if op == '+' then
  if at then return 0 end
  ids[#ids + 1] = user_id
else
  if not at then return 0 end
  table.remove(ids, at)
end
if #ids == 0 then
  redis.call('HDEL', bucket, value)
else
  redis.call('HSET', bucket, value, cjson.encode(ids))
end
return 1
