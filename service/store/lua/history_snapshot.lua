-- A cluster: write a session's history snapshot into its context hash (docs/redis.md "Redis Cluster: history at
-- a session's first click"), after history_start.lua made it the user's running session; history.lua is
-- prepended. Only while the history is pending: a concurrent starter may have written the same snapshot.
--
-- KEYS[1] the session's context hash  <prefix>:{sid}:x
-- ARGV[1] the user's keyed hash       ARGV[2] the user record's TTL in seconds
-- ARGV[3..8] history_start.lua's six values      ARGV[9..] the user's open item fields
--
-- Reply: the session's six history values as stored (CF.hist_*; the gap in ms from its first click).

local ctx = KEYS[1]
if redis.call('HGET', ctx, CF.history_pending) == ARGV[1] then
  local first_ts = tonumber(redis.call('HGET', ctx, CF.first_ts)) or 0
  write_history(ctx, ARGV[1], {unpack(ARGV, 3, 8)}, first_ts, {unpack(ARGV, 9)}, true)
  redis.call('HDEL', ctx, CF.history_pending)
  redis.call('EXPIRE', ctx, tonumber(ARGV[2]))
end
local stored = redis.call('HMGET', ctx, CF.hist_sessions, CF.hist_events, CF.hist_carts, CF.hist_orders,
  CF.hist_gap_ms, CF.hist_cart_items_open)
for i = 1, #stored do
  stored[i] = tonumber(stored[i]) or 0
end
return stored
