--! keys: open job claim
--! args: job_id segment_id now_ms
-- Adds a new segment to the creation backfill still gathering segments, so
-- segments created together share one scan of the log and one pass over the
-- users. `open` names the gathering job; the job takes segments until its
-- `open_until_ms` and until a worker seals it to start. All {jobs} slot.
-- Returns 1 joined, 0 the job is sealed, gone or closed (make a new one).
local open, job, claim = KEYS[1], KEYS[2], KEYS[3]
local job_id, sid, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('GET', open) ~= job_id then return 0 end
local st = redis.call('HMGET', job, 'sealed', 'open_until_ms', 'targets')
if st[1] or not st[2] or tonumber(st[2]) < now or not st[3] then return 0 end
local targets = cjson.decode(st[3])
targets[#targets + 1] = sid
redis.call('HSET', job, 'targets', cjson.encode(targets))
redis.call('SET', claim, job_id)
return 1
