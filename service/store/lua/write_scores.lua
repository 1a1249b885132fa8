-- Write back the scores of one batch (docs/architecture.md §7): one call per batch on a single Redis, one per
-- hash slot on a cluster (a script's keys must share a slot).
--
-- KEYS     m_1, e_1, ..., m_k, e_k    meta hash and event-id hash of each scored session
--          [risk_zset, expiry_zset]   the at-risk index, when this call also updates it
-- ARGV[1]  k, the number of session records
-- ARGV[2]  idle TTL in seconds (an index entry expires with its session)
-- ARGV[3]  j, the number of index entries
-- then k records of RECORD_ARGS fields: session_id, event-id digest or '', then SCORE_FIELDS
--          (event_index, p_add_cart, p_make_order, risk, intent code, model, window_len, scored_ts)
-- `F`, `SCORE_FIELDS`, `RECORD_ARGS` and the CART_* states are prepended by
-- service/store/score_record.py:lua_prelude().
-- then j index entries of 2 fields: session_id, abandonment_risk
-- then the alert arguments: stream MAXLEN (approximate), outcomes TTL in seconds, and '1' to XADD
--          the alerts here (single Redis) or '0' to return them for the caller's XADD (cluster)
-- KEYS, after the index keys: the outcomes hash of each record with an arm, in record order, then (when the
--          alerts are XADDed here) the alert stream.
-- A record's arm and policy (the last two of its RECORD_ARGS) are '' unless model.risk.alert_due held at its
-- click under its model's policy. It raises
-- an alert when the session still has an open cart with no alert yet (meta F.alert): the marker is set, the
-- alert is kept in the outcomes hash, and XADDed (docs/redis.md "Coupon alerts"). One alert per open cart.
--
-- A session that no longer exists (deleted, or expired while its batch ran) is not recreated:
-- only a live meta hash gets scores. A session whose cart an order closed (meta cart CART_CLOSED)
-- leaves the index when its record and the index are in this call (a single Redis); on a cluster they
-- are not, and the reader drops it (window_store.at_risk). The index is only eventually consistent
-- with the sessions; readers check that a session is live before they return it.

local k = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local j = tonumber(ARGV[3])
local alert_base = 3 + k * RECORD_ARGS + 2 * j
local maxlen, outcome_ttl = ARGV[alert_base + 1], tonumber(ARGV[alert_base + 2])
local xadd_here = ARGV[alert_base + 3] == '1'
local outcome_key_base = 2 * k + (j > 0 and 2 or 0)
local n_due = 0
local alerts = {}  -- flat: session_id, event_index, risk, model, arm, ts, policy per alert

local closed = {}  -- session_id -> true when an order closed its cart
for r = 0, k - 1 do
  local meta_key, ids_key = KEYS[2 * r + 1], KEYS[2 * r + 2]
  local base = 4 + r * RECORD_ARGS
  if tonumber(redis.call('HGET', meta_key, F.cart)) == CART_CLOSED then
    closed[ARGV[base]] = true
  end
  local digest = ARGV[base + 1]
  local v = {}  -- SCORE_FIELDS name -> value
  for f = 1, #SCORE_FIELDS do
    v[SCORE_FIELDS[f]] = ARGV[base + 1 + f]
  end
  local index = tonumber(v.event_index)
  local arm, policy = ARGV[base + 2 + #SCORE_FIELDS], ARGV[base + 3 + #SCORE_FIELDS]
  local outcome_key
  if arm ~= '' then
    n_due = n_due + 1
    outcome_key = KEYS[outcome_key_base + n_due]
  end
  if redis.call('EXISTS', meta_key) == 1 then
    if outcome_key then
      local m = redis.call('HMGET', meta_key, F.cart, F.alert)
      if tonumber(m[1]) == CART_OPEN and not m[2] then
        redis.call('HSET', meta_key, F.alert, v.event_index)
        redis.call('HSET', outcome_key, v.event_index,
                   table.concat({v.scored_ts, v.risk, arm, policy, v.model}, '|'))
        redis.call('EXPIRE', outcome_key, outcome_ttl)
        for _, x in ipairs({ARGV[base], v.event_index, v.risk, v.model, arm, v.scored_ts, policy}) do
          alerts[#alerts + 1] = x
        end
      end
    end
    -- Batches may finish out of order for one session; the meta keeps the newest event's scores.
    local scored = tonumber(redis.call('HGET', meta_key, F.event_index))
    if not scored or index >= scored then
      local fields = {}
      for f = 1, #SCORE_FIELDS do
        fields[#fields + 1] = F[SCORE_FIELDS[f]]
        fields[#fields + 1] = v[SCORE_FIELDS[f]]
      end
      redis.call('HSET', meta_key, unpack(fields))
    end
    local seen = digest ~= '' and redis.call('HGET', ids_key, digest)
    if seen then
      -- Keep the body the click stored ("index|body[|answer]"), so a later retry is still compared with it.
      local answer = {v.p_add_cart, v.p_make_order, v.risk, v.intent, v.window_len}
      local body = string.match(seen, '^[^|]*|([^|]*)')
      if body and string.find(body, ':', 1, true) then
        table.insert(answer, 1, body)
      end
      table.insert(answer, 1, index)
      redis.call('HSET', ids_key, digest, table.concat(answer, '|'))
    end
  end
end

if j > 0 then
  local risk_key, expiry_key = KEYS[2 * k + 1], KEYS[2 * k + 2]
  local now = redis.call('TIME')
  local expires_at = tonumber(now[1]) + tonumber(now[2]) / 1e6 + ttl
  local base = 3 + k * RECORD_ARGS
  for e = 0, j - 1 do
    local session_id, risk = ARGV[base + 2 * e + 1], ARGV[base + 2 * e + 2]
    if closed[session_id] then
      redis.call('ZREM', risk_key, session_id)
      redis.call('ZREM', expiry_key, session_id)
    else
      redis.call('ZADD', risk_key, risk, session_id)
      redis.call('ZADD', expiry_key, expires_at, session_id)
    end
  end
  -- Keep the index bounded even when nobody reads it: drop a few entries past their expiry.
  local dead = redis.call('ZRANGEBYSCORE', expiry_key, '-inf', expires_at - ttl, 'LIMIT', 0, 256)
  if #dead > 0 then
    redis.call('ZREM', risk_key, unpack(dead))
    redis.call('ZREM', expiry_key, unpack(dead))
  end
end
if xadd_here then
  local stream_key = KEYS[outcome_key_base + n_due + 1]
  for a = 0, #alerts / 7 - 1 do
    local x = 7 * a
    redis.call('XADD', stream_key, 'MAXLEN', '~', maxlen, '*', 'session', alerts[x + 1], 'event_index',
               alerts[x + 2], 'risk', alerts[x + 3], 'model', alerts[x + 4], 'policy', alerts[x + 7],
               'arm', alerts[x + 5], 'ts', alerts[x + 6])
  end
  return {k + j, #alerts / 7}
end
return {k + j, #alerts / 7, unpack(alerts)}
