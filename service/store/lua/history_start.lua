-- A cluster: start a session's history on the user's slot (docs/redis.md "Redis Cluster: history at a session's
-- first click"); history.lua is prepended. The fold of the user's running session needs that session's data,
-- which lives on its own slot: the first call answers which session it is, the caller reads its data
-- (history_handoff.lua) and calls again with it. The fold is a compare-and-set on the running session, so
-- concurrent starters fold it once.
--
-- KEYS[1] the user's record  <prefix>:{u:<hmac>}:h
-- ARGV[1] the session starting         ARGV[2] the user record's TTL in seconds
-- ARGV[3] the running session the caller read the data of ('' on the first call; the session itself when its id
--         was reused after its window expired and its earlier state is still the running one)
-- ARGV[4..] that session's fold data (fold_payload's; none when it was gone)
--
-- Reply: {HISTORY_FOLD, running session id}: fold that one first (call again with its data); or
--        {HISTORY_READY, sessions, clicks, add_carts, orders, newest ts (ms) or '', open items, item fields...}:
--        the snapshot; the session is now the user's running one.

local user_key = KEYS[1]
local session = ARGV[1]
local running = redis.call('HGET', user_key, UF.running)
if running and running ~= session then
  if running ~= ARGV[3] then
    return {HISTORY_FOLD, running}
  end
  if #ARGV > 3 then  -- gone (expired, deleted) leaves nothing to fold, as on a single Redis
    fold_into(user_key, {unpack(ARGV, 4)})
  end
elseif running and ARGV[3] == session and #ARGV > 3 then
  fold_into(user_key, {unpack(ARGV, 4)})  -- this id's own earlier state: reused after its window expired
end
redis.call('HSET', user_key, UF.running, session)
redis.call('EXPIRE', user_key, tonumber(ARGV[2]))
local values, items = history_of(user_key)
local out = {HISTORY_READY, unpack(values)}
for i = 1, #items do
  out[#out + 1] = items[i]
end
return out
