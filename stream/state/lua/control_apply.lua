--! keys: applied target usage version
--! args: record_key offset field value usage_prefix
-- Materialises one control-log record (docs/DURABILITY.md), idempotently:
-- a record at or below the offset already applied to its key changes nothing,
-- so several processes may replay the log at once and a replay after a crash
-- is harmless. `value` "" deletes the field (a tombstone). Records that use
-- segments carry a top-level "uses" list; the usage counters (usage_prefix
-- ":" segment id) follow the old and the new value, so a segment's users are
-- counted in O(1) for the 409 on delete. Every key is in the {ctl} slot.
-- Returns 1 applied, 0 already applied.
local applied, target, usage, version = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local record_key, offset, field, value, prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local done = tonumber(redis.call('HGET', applied, record_key) or '-1')
if offset <= done then return 0 end
local function uses(raw)
  if not raw or raw == '' or prefix == '' then return {} end
  local ok, obj = pcall(cjson.decode, raw)
  if not ok or type(obj) ~= 'table' or type(obj['uses']) ~= 'table' then return {} end
  return obj['uses']
end
local old = redis.call('HGET', target, field)
for _, sid in ipairs(uses(old)) do
  local f = prefix .. ':' .. sid
  if redis.call('HINCRBY', usage, f, -1) <= 0 then redis.call('HDEL', usage, f) end
end
if value == '' then
  redis.call('HDEL', target, field)
else
  redis.call('HSET', target, field, value)
  for _, sid in ipairs(uses(value)) do redis.call('HINCRBY', usage, prefix .. ':' .. sid, 1) end
end
redis.call('HSET', applied, record_key, offset)
redis.call('INCR', version)
return 1
