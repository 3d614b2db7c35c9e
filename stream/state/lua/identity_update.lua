-- Adds or removes one user under one identity value in a bucket of the
-- identity index (KEYS[1]: a hash, field = email or phone, value = JSON list
-- of user ids; one {bucket} tag, one slot). Many values share a bucket so
-- Redis keeps them in a listpack instead of one key per value.
-- ARGV: op ("+" or "-"), value, user_id
local raw = redis.call('HGET', KEYS[1], ARGV[2])
local ids = raw and cjson.decode(raw) or {}
local at = nil
for i, uid in ipairs(ids) do
  if uid == ARGV[3] then at = i end
end
if ARGV[1] == '+' then
  if at then return 0 end
  ids[#ids + 1] = ARGV[3]
else
  if not at then return 0 end
  table.remove(ids, at)
end
if #ids == 0 then
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(ids))
end
return 1
