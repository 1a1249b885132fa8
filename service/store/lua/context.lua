-- The context state of a click (docs/architecture.md §3.1, docs/redis.md "Context state"), prepended to
-- append_event.lua and run inside its one atomic call. Mirrors model/context_tracker.py: `update_context` is
-- update_context, `fold_running` is UserHistory.fold_running and `start_history` is start_session.
-- KEYS and ARGV are append_event.lua's (its header lists them).

local ctx_key, user_key = KEYS[5], KEYS[6]
local ctx_item, ctx_category = ARGV[11], ARGV[12]
local ctx_user, user_ttl = ARGV[14], tonumber(ARGV[15])
local ctx_ts = tonumber(ARGV[3])
local ctx_action = tonumber(ARGV[2])
local ctx_add_cart, ctx_order = tonumber(ARGV[8]), tonumber(ARGV[9])
local ctx_session = ARGV[18]

local function num(value)
  return tonumber(value) or 0
end

-- The session's context hash lives as long as the session, or, once it has a user, as long as the user's
-- record: the user's next session folds it in, however much later that session starts.
local function refresh_context_ttl()
  if redis.call('HEXISTS', ctx_key, CF.user) == 1 then
    redis.call('EXPIRE', ctx_key, user_ttl)
  else
    redis.call('EXPIRE', ctx_key, tonumber(ARGV[6]))
  end
end

-- The click's raw context in CONTEXT_NAMES order; durations in ms. `cart` is the state after the click.
local function context_row(ts, seen_before, carted_before, in_hist_cart, cart)
  local c = redis.call('HMGET', ctx_key, CF.first_ts, CF.cart_opened_ts, CF.items, CF.categories,
    CF.open_items, CF.clicks, CF.hist_sessions, CF.hist_events, CF.hist_carts, CF.hist_orders, CF.hist_gap_ms,
    CF.hist_cart_items_open)
  local is_open = cart == CART_OPEN and 1 or 0
  local values = {
    item_seen_before = seen_before, item_carted_before = carted_before, cart_items_open = num(c[5]),
    distinct_items = num(c[3]), distinct_categories = num(c[4]), clicks = num(c[6]),
    session_seconds = math.max(ts - num(c[1]), 0), cart_open = is_open,
    cart_open_seconds = is_open == 1 and math.max(ts - num(c[2]), 0) or 0,
    hist_sessions = num(c[7]), hist_events = num(c[8]), hist_carts = num(c[9]), hist_orders = num(c[10]),
    hist_gap_seconds = num(c[11]), hist_cart_items_open = num(c[12]), item_in_hist_cart = in_hist_cart,
  }
  local out = {}
  for i = 1, #CONTEXT_NAMES do
    out[i] = values[CONTEXT_NAMES[i]]
  end
  return out
end

-- UserHistory.fold_running: the user's previous session joins the closed history.
local function fold_running(running_key)
  local flat = redis.call('HGETALL', running_key)
  if #flat == 0 then
    return  -- deleted, or past the user's TTL: nothing to fold
  end
  local s = {}
  for i = 1, #flat, 2 do
    s[flat[i]] = flat[i + 1]
  end
  redis.call('HINCRBY', user_key, UF.sessions, 1)
  redis.call('HINCRBY', user_key, UF.events, num(s[CF.clicks]))
  redis.call('HINCRBY', user_key, UF.carts, num(s[CF.carts]))
  redis.call('HINCRBY', user_key, UF.orders, num(s[CF.orders]))
  local last = redis.call('HGET', user_key, UF.last_ts)
  local newest = num(s[CF.max_ts])
  if not last or newest > tonumber(last) then
    redis.call('HSET', user_key, UF.last_ts, string.format('%.0f', newest))
  end
  for i = 1, #flat, 2 do
    local field = flat[i]
    if string.sub(field, 1, #ITEM_PREFIX) == ITEM_PREFIX then
      local bits = tonumber(flat[i + 1])
      if bit.band(bits, ITEM_OPEN) ~= 0 then
        redis.call('HINCRBY', user_key, UF.open_items, redis.call('HSETNX', user_key, field, 1))
      elseif bit.band(bits, ITEM_CLOSED) ~= 0 then
        redis.call('HINCRBY', user_key, UF.open_items, 0 - redis.call('HDEL', user_key, field))
      end
    end
  end
  -- Folded once: it is no one's running session now. Still live (the user has two sessions at once), it
  -- keeps its own state and is folded no more; else it goes when the session TTL runs out.
  redis.call('HDEL', running_key, CF.user)
  redis.call('EXPIRE', running_key, tonumber(ARGV[6]))
end

-- start_session, first half: fold the user's previous session (this id's own earlier state too).
local function fold_previous()
  local running = redis.call('HGET', user_key, UF.running)
  if running then
    fold_running(ARGV[16] .. running .. ARGV[17])
  end
end

-- start_session, second half: snapshot the history into this session, which becomes the running one.
local function snapshot_history()
  local u = redis.call('HMGET', user_key, UF.sessions, UF.events, UF.carts, UF.orders, UF.last_ts, UF.open_items)
  local gap = u[5] and (ctx_ts - tonumber(u[5])) or 0
  redis.call('HSET', ctx_key, CF.user, ctx_user, CF.hist_sessions, num(u[1]), CF.hist_events, num(u[2]),
    CF.hist_carts, num(u[3]), CF.hist_orders, num(u[4]), CF.hist_gap_ms, string.format('%.0f', gap),
    CF.hist_cart_items_open, num(u[6]))
  local flat = redis.call('HGETALL', user_key)
  for i = 1, #flat, 2 do
    if string.sub(flat[i], 1, #ITEM_PREFIX) == ITEM_PREFIX then
      redis.call('HSET', ctx_key, flat[i], ITEM_HIST_OPEN)
    end
  end
  redis.call('HSET', user_key, UF.running, ctx_session)
  redis.call('EXPIRE', user_key, user_ttl)
end

-- update_context: apply one new click (event `index`) to the state and return its context row.
local function update_context(index, cart_before, cart_after)
  if index == 0 then
    local with_history = user_key ~= nil and ctx_user ~= ''
    if with_history then
      fold_previous()
    end
    redis.call('DEL', ctx_key)  -- a stale state of an earlier session under this id (its window expired)
    redis.call('HSET', ctx_key, CF.first_ts, ARGV[3], CF.max_ts, ARGV[3])
    if with_history then
      snapshot_history()
    end
  end
  redis.call('HINCRBY', ctx_key, CF.clicks, 1)
  if ctx_ts > num(redis.call('HGET', ctx_key, CF.max_ts)) then
    redis.call('HSET', ctx_key, CF.max_ts, ARGV[3])
  end
  local seen_before, carted_before, in_hist_cart = 0, 0, 0
  if ctx_item ~= '' then
    local field = ITEM_PREFIX .. ctx_item
    local bits = num(redis.call('HGET', ctx_key, field))
    seen_before = bit.band(bits, ITEM_SEEN) ~= 0 and 1 or 0
    carted_before = bit.band(bits, ITEM_CARTED) ~= 0 and 1 or 0
    in_hist_cart = bit.band(bits, ITEM_HIST_OPEN) ~= 0 and 1 or 0
    if seen_before == 0 then
      redis.call('HINCRBY', ctx_key, CF.items, 1)
      bits = bit.bor(bits, ITEM_SEEN)
    end
    if ctx_action == ctx_add_cart then
      if bit.band(bits, ITEM_OPEN) == 0 then
        redis.call('HINCRBY', ctx_key, CF.open_items, 1)
      end
      bits = bit.band(bit.bor(bits, ITEM_CARTED + ITEM_OPEN), bit.bnot(ITEM_CLOSED))
    elseif ctx_action == ctx_order then
      if bit.band(bits, ITEM_OPEN) ~= 0 then
        redis.call('HINCRBY', ctx_key, CF.open_items, -1)
      end
      bits = bit.bor(bit.band(bits, bit.bnot(ITEM_OPEN)), ITEM_CLOSED)
    end
    redis.call('HSET', ctx_key, field, bits)
  end
  if ctx_category ~= '' then
    redis.call('HINCRBY', ctx_key, CF.categories, redis.call('HSETNX', ctx_key, CATEGORY_PREFIX .. ctx_category, 1))
  end
  if ctx_action == ctx_add_cart then
    redis.call('HINCRBY', ctx_key, CF.carts, 1)
  elseif ctx_action == ctx_order then
    redis.call('HINCRBY', ctx_key, CF.orders, 1)
  end
  if cart_after == CART_OPEN and cart_before ~= CART_OPEN then
    redis.call('HSET', ctx_key, CF.cart_opened_ts, ARGV[3])
  end
  refresh_context_ttl()
  return context_row(ctx_ts, seen_before, carted_before, in_hist_cart, cart_after)
end
