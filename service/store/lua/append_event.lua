-- Append one click to a session, atomically, in one round trip (docs/architecture.md §7).
-- `F` (the meta-hash field names) and CART_NONE/OPEN/CLOSED (model.risk) are prepended by
-- service/store/score_record.py:lua_prelude(); TS_SCALE, ACTION_SCALE and the APPEND_* reply codes by
-- service/store/packing.py:lua_prelude().
--
-- KEYS[1]  window list  <prefix>:{sid}:w   packed events, oldest first, at most N
-- KEYS[2]  meta hash    <prefix>:{sid}:m   fields F.* (count, last_ts, from_ad, cart, + scores)
-- KEYS[3]  event ids    <prefix>:{sid}:e   8-byte digest of event_id -> "index|body" or "index|body|scores"
-- KEYS[4]  outcomes     <prefix>:{sid}:o   alert index -> alert, 'o'..index -> "order ts_ms|event_index"
--          (docs/redis.md "Coupon alerts"): an order on a cart that was alerted records the alert's outcome
-- ARGV[1]  event-id digest, '' when the click has no event_id
-- ARGV[2]  action index (0..15)
-- ARGV[3]  ts in integer milliseconds
-- ARGV[4]  from_ad as sent: '1' sets the session's sticky flag, anything else leaves it
-- ARGV[5]  window length N
-- ARGV[6]  idle TTL in seconds
-- ARGV[7]  how many event ids to remember
-- ARGV[8]  action index of add_cart
-- ARGV[9]  action index of order
-- ARGV[10] the body as sent, "action:ts_ms:from_ad[:item:category:user]" (score_record.body_key), '' to skip the comparison
-- The context state (docs/redis.md "Context state"; CF, UF, ITEM_* and CONTEXT_NAMES from
-- service/store/context_record.py:lua_prelude(); context.lua mirrors model/context_tracker.py update_context):
-- KEYS[5]  context hash <prefix>:{sid}:x   counters, 'i:'..item -> bits, 'c:'..category -> 1
-- KEYS[6]  user hash    <prefix>:{u:<hmac>}:h, only with a user on a single Redis (cross-slot)
-- ARGV[11] item id, '' none        ARGV[12] category id, '' none
-- ARGV[13] context state: 0 off (KEYS[5] unused), 1 session, 2 session + history
-- ARGV[14] the user's keyed hash, '' none      ARGV[15] the user record's TTL in seconds
-- ARGV[16], ARGV[17] a session's context key around its id (KeyScheme.context_key_parts), for the
--          user's running session, folded at this session's first click (single Redis only)
-- ARGV[18] the session id (the user record's running session)
-- ARGV[19] '1' on a cluster only: a first click with a user marks the session's history pending (the row
--          gets one more value, 1) for the store to start on the user's slot (docs/redis.md)
--
-- Reply: {event_index, duplicate, out_of_order 0/1, cart state 0/1/2, stored answer or '', model or '',
--         context {CONTEXT_NAMES values, durations in ms} or {} when off,
--         packed event 1, ..., packed event k}
-- duplicate is APPEND_NEW, APPEND_DUPLICATE, or APPEND_CONFLICT: the event_id was seen with another body.
-- On a conflict nothing is written, and the stored answer slot carries the first body instead, with no events.
-- cart state is model.risk's: 0 none, 1 open (add_cart), 2 closed (order); this script's
-- cart_transition mirrors model.risk.cart_transition.
-- A packed event is one integer, ts_ms * TS_SCALE + action * ACTION_SCALE + from_ad (packing.py), so the
-- list stays a compact run of integers (< 2^53, exact in Lua's doubles up to the year 2200).

local window_key, meta_key, ids_key = KEYS[1], KEYS[2], KEYS[3]
local digest = ARGV[1]
local action = tonumber(ARGV[2])
local ts_ms = tonumber(ARGV[3])
local window = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local id_memory = tonumber(ARGV[7])
local add_cart = tonumber(ARGV[8])
local order = tonumber(ARGV[9])
local body = ARGV[10]
local context_level = tonumber(ARGV[13]) or 0

-- model.risk.cart_transition: add_cart opens, order closes, anything else keeps.
local function cart_transition(state, act)
  if act == add_cart then
    return CART_OPEN
  end
  if act == order then
    return CART_CLOSED
  end
  return state
end

-- `with_context`: the context hash's too (a new click's update_context refreshes it itself).
local function refresh_ttl(with_context)
  redis.call('EXPIRE', window_key, ttl)
  redis.call('EXPIRE', meta_key, ttl)
  redis.call('EXPIRE', ids_key, ttl)
  if with_context and context_level > 0 then
    refresh_context_ttl()
  end
end

-- "index|body[|answer]" -> index, body, answer ('' while the event is not scored yet). A body always
-- holds ':'; a value without one is the older "index[|answer]" form, whose body is unknown ('').
local function split_seen(value)
  local sep = string.find(value, '|', 1, true)
  if not sep then
    return tonumber(value), '', ''
  end
  local index, rest = tonumber(string.sub(value, 1, sep - 1)), string.sub(value, sep + 1)
  local sep2 = string.find(rest, '|', 1, true)
  local first = sep2 and string.sub(rest, 1, sep2 - 1) or rest
  if not string.find(first, ':', 1, true) then
    return index, '', rest
  end
  return index, first, sep2 and string.sub(rest, sep2 + 1) or ''
end

-- `cart` and `model`: the meta hash's, read already by a new click; nil: read them here.
local function reply(index, duplicate, out_of_order, answer, context, cart, model)
  if cart == nil then
    local meta = redis.call('HMGET', meta_key, F.cart, F.model)
    cart, model = tonumber(meta[1]) or 0, meta[2]
  end
  local out = {index, duplicate, out_of_order, cart, answer, model or '', context}
  local events = redis.call('LRANGE', window_key, 0, -1)
  for i = 1, #events do
    out[#out + 1] = events[i]
  end
  return out
end

-- Keep the `id_memory` most recent event ids; runs only for sessions longer than that.
local function forget_old_ids()
  local count = redis.call('HLEN', ids_key)
  if count <= id_memory then
    return
  end
  local flat = redis.call('HGETALL', ids_key)
  if count == id_memory + 1 then
    -- Every click of a long session lands here: one id to forget, the oldest, found in one pass (no sort, no
    -- table per entry; docs/benchmarks/id-path.md). A value starts with its event index.
    local oldest, oldest_index = nil, math.huge
    for i = 1, #flat, 2 do
      local index = tonumber(string.match(flat[i + 1], '^%d+')) or 0
      if index < oldest_index then
        oldest, oldest_index = flat[i], index
      end
    end
    redis.call('HDEL', ids_key, oldest)
    return
  end
  local entries = {}
  for i = 1, #flat, 2 do
    entries[#entries + 1] = {split_seen(flat[i + 1]), flat[i]}
  end
  table.sort(entries, function(x, y) return x[1] < y[1] end)
  local old = {}
  for i = 1, count - id_memory do
    old[#old + 1] = entries[i][2]
  end
  redis.call('HDEL', ids_key, unpack(old))
end

if digest ~= '' then
  local seen = redis.call('HGET', ids_key, digest)
  if seen then
    local index, first_body, answer = split_seen(seen)
    if body ~= '' and first_body ~= '' and body ~= first_body then
      return {index, APPEND_CONFLICT, 0, 0, first_body, ''}
    end
    refresh_ttl(true)
    -- A retry is rescored with the session's context as it is now, its item flags unknown (0).
    local current = {}
    if context_level > 0 then
      current = context_row(ts_ms, 0, 0, 0, tonumber(redis.call('HGET', meta_key, F.cart)) or CART_NONE)
    end
    return reply(index, APPEND_DUPLICATE, 0, answer, current)
  end
end

local meta = redis.call('HMGET', meta_key, F.last_ts, F.from_ad, F.cart, F.alert, F.model)
local last_ts = tonumber(meta[1])
local sticky_ad = meta[2] == '1' or ARGV[4] == '1'
local cart_before = tonumber(meta[3]) or CART_NONE
local cart = cart_transition(cart_before, action)
local out_of_order = (last_ts and ts_ms < last_ts) and 1 or 0

local index = redis.call('HINCRBY', meta_key, F.count, 1) - 1
redis.call('HSET', meta_key, F.last_ts, ARGV[3], F.from_ad, sticky_ad and '1' or '0', F.cart, cart)
-- The order outcome of an alerted cart, written with the click itself (no extra round trip); the marker
-- goes, so a new cart can alert again. An outcomes hash past its retention is not recreated.
if meta[4] and action == order then
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('HSET', KEYS[4], 'o' .. meta[4], ARGV[3] .. '|' .. index)
  end
  redis.call('HDEL', meta_key, F.alert)
end

local packed = ts_ms * TS_SCALE + action * ACTION_SCALE + (sticky_ad and 1 or 0)
redis.call('RPUSH', window_key, string.format('%.0f', packed))
redis.call('LTRIM', window_key, -window, -1)

if digest ~= '' and id_memory > 0 then
  redis.call('HSET', ids_key, digest, index .. '|' .. body)
  if index >= id_memory then  -- the hash holds at most index + 1 ids: none to forget before that
    forget_old_ids()
  end
end

local context = {}
if context_level > 0 then
  context = update_context(index, cart_before, cart)
end
refresh_ttl(false)
return reply(index, APPEND_NEW, out_of_order, '', context, cart, meta[5])
