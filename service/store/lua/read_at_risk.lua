-- Ranked candidates from the at-risk index, after dropping entries whose session has expired.
--
-- KEYS[1]  risk zset     member session_id, score abandonment_risk
-- KEYS[2]  expiry zset   member session_id, score epoch seconds when the session's TTL runs out
-- ARGV[1]  min_risk, ARGV[2] offset, ARGV[3] count
-- Reply: flat {session_id, risk, ...}, riskiest first. The caller still checks each session's meta
-- key: on a cluster the index can trail a delete, and the expiry score trails TTL refreshes.

local risk_key, expiry_key = KEYS[1], KEYS[2]
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1e6
local dead = redis.call('ZRANGEBYSCORE', expiry_key, '-inf', now_s, 'LIMIT', 0, 1000)
if #dead > 0 then
  redis.call('ZREM', risk_key, unpack(dead))
  redis.call('ZREM', expiry_key, unpack(dead))
end
return redis.call('ZREVRANGEBYSCORE', risk_key, '+inf', ARGV[1], 'WITHSCORES', 'LIMIT', ARGV[2], ARGV[3])
