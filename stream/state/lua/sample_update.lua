--! keys: entries masks counters
--! args: lg_k ...
-- Apply a batch of membership transitions to ONE segment's retained sample.
--
-- KEYS[1] ZSET user_id -> u (hash in [0,1)), KEYS[2] HASH user_id -> channel mask,
-- KEYS[3] HASH theta, n, n0..n4. All three share the segment's hash tag.
-- ARGV[1] lg_k, then triples (user_id, u, mask); mask -1 means "not a member".
--
-- Invariant kept: the ZSET holds exactly the current members with u < theta,
-- the counters count them (n) and those reachable per channel (n0..n4). Each
-- triple states the user's current state, so replaying it changes nothing.
-- When more than 2K are retained, theta drops to the (K+1)-th smallest u and
-- entries with u >= theta go; theta never rises here.
--
-- theta is kept as the score string Redis itself printed: a Lua tostring()
-- would round it to 14 digits and break the exact match with the writer.

local zkey, mkey, skey = KEYS[1], KEYS[2], KEYS[3]
local k = 1
for _ = 1, tonumber(ARGV[1]) do k = k * 2 end
local cap = 2 * k
local NCH = 5

local st = redis.call('HMGET', skey, 'theta', 'n', 'n0', 'n1', 'n2', 'n3', 'n4')
local theta_str = st[1] or '1'
local theta = tonumber(theta_str)
local n = tonumber(st[2] or '0')
local counts = {}
for c = 1, NCH do counts[c] = tonumber(st[2 + c] or '0') end

local function add_mask(mask, d)
  for c = 1, NCH do
    if mask % 2 == 1 then counts[c] = counts[c] + d end
    mask = (mask - mask % 2) / 2
  end
end

local function trim()
  local kth = redis.call('ZRANGE', zkey, k, k, 'WITHSCORES')
  theta_str = kth[2]
  theta = tonumber(theta_str)
  local doomed = redis.call('ZRANGEBYSCORE', zkey, theta_str, '+inf')
  local step = 1000
  for i = 1, #doomed, step do
    local last = math.min(i + step - 1, #doomed)
    local masks = redis.call('HMGET', mkey, unpack(doomed, i, last))
    for j = 1, #masks do
      if masks[j] then add_mask(tonumber(masks[j]), -1) end
    end
    redis.call('HDEL', mkey, unpack(doomed, i, last))
  end
  redis.call('ZREMRANGEBYSCORE', zkey, theta_str, '+inf')
  n = n - #doomed
end

for i = 2, #ARGV, 3 do
  local uid, u_str, mask_str = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local u = tonumber(u_str)
  -- u >= theta: neither retained now nor admissible, whatever the transition.
  if u < theta then
    local mask = tonumber(mask_str)
    local old = redis.call('HGET', mkey, uid)
    if mask >= 0 then
      if not old then
        redis.call('ZADD', zkey, u_str, uid)
        redis.call('HSET', mkey, uid, mask_str)
        n = n + 1
        add_mask(mask, 1)
        if n > cap then trim() end
      else
        local old_mask = tonumber(old)
        if old_mask ~= mask then
          redis.call('HSET', mkey, uid, mask_str)
          add_mask(old_mask, -1)
          add_mask(mask, 1)
        end
      end
    elseif old then
      redis.call('ZREM', zkey, uid)
      redis.call('HDEL', mkey, uid)
      n = n - 1
      add_mask(tonumber(old), -1)
    end
  end
end

redis.call('HSET', skey, 'theta', theta_str, 'n', n,
  'n0', counts[1], 'n1', counts[2], 'n2', counts[3], 'n3', counts[4], 'n4', counts[5])
return n
