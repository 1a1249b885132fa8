-- A cluster: hand a user's running session's fold data to the start of their next session (docs/redis.md "Redis
-- Cluster: history at a session's first click"); runs on that session's slot; history.lua is prepended.
-- It is the user's own (CF.user, CF.history_pending or, once handed off, CF.folded_for name the user), or nothing
-- is handed. Idempotent: a second starter reads the same data; history_start.lua's compare-and-set folds it once.
--
-- KEYS[1] the running session's context hash  <prefix>:{sid}:x
-- ARGV[1] the user's keyed hash     ARGV[2] the session TTL in seconds
--
-- Reply: fold_payload's list, or {} when there is nothing of this user's to fold.

local ctx = KEYS[1]
local user = ARGV[1]
local owner = redis.call('HMGET', ctx, CF.user, CF.history_pending, CF.folded_for)
if owner[1] ~= user and owner[2] ~= user and owner[3] ~= user then
  return {}
end
local payload = fold_payload(redis.call('HGETALL', ctx))
-- Folded: it is no one's running session now (as context.lua's fold_running leaves it), and it keeps the
-- session TTL instead of the user's.
redis.call('HSET', ctx, CF.folded_for, user)
redis.call('HDEL', ctx, CF.user, CF.history_pending)
redis.call('EXPIRE', ctx, tonumber(ARGV[2]))
return payload
