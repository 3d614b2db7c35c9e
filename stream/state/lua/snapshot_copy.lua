--! keys: members snapshot
--! args: cursor count ttl_ms
-- Copies one SSCAN page of a segment's members into an export's snapshot
-- sorted set (all scores 0, so ZADD collapses a member SSCAN returned twice).
-- Both keys carry the segment's tag. Returns the next cursor ("0": done).
local members, snapshot = KEYS[1], KEYS[2]
local page = redis.call('SSCAN', members, ARGV[1], 'COUNT', ARGV[2])
local ids = page[2]
for i = 1, #ids, 1000 do
  local args = {}
  for j = i, math.min(i + 999, #ids) do
    args[#args + 1] = 0
    args[#args + 1] = ids[j]
  end
  redis.call('ZADD', snapshot, unpack(args))
end
redis.call('PEXPIRE', snapshot, ARGV[3])
return page[1]
