--! keys: members seen
--! args: cursor count ttl_ms
-- One step of a duplicate-free walk over a segment's members: one SSCAN page,
-- less the ids an earlier page already gave (SSCAN repeats ids when the set
-- rehashes mid-walk), which are then remembered in `seen`. Two set commands
-- per 1,000 ids (SMISMEMBER, SADD), not one per id: at 1M members the whole
-- walk costs Redis ~1.7 s where copying into a sorted set first cost 4.4 s.
-- Both keys carry the segment's tag. Returns {next cursor ("0": done), the
-- new ids, 1 if `seen` existed before this step}: a walk that has already
-- given ids and finds `seen` gone (expired under a stalled reader) must fail.
local members, seen = KEYS[1], KEYS[2]
local existed = redis.call('EXISTS', seen)
local page = redis.call('SSCAN', members, ARGV[1], 'COUNT', ARGV[2])
local ids, fresh, f = page[2], {}, 0
local n = #ids
-- 1,000 ids per command: unpack() of a whole page could pass Lua's C stack limit (8000)
for i = 1, n, 1000 do
  local j = math.min(i + 999, n)
  local known = redis.call('SMISMEMBER', seen, unpack(ids, i, j))
  local first = f + 1
  for x = i, j do
    if known[x - i + 1] == 0 then
      f = f + 1
      fresh[f] = ids[x]
    end
  end
  if f >= first then redis.call('SADD', seen, unpack(fresh, first, f)) end
end
redis.call('PEXPIRE', seen, ARGV[3])
return {page[1], fresh, existed}
