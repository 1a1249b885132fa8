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
-- A cluster (ARGV[19] '1'): the user's record is on another slot, so a session's first click with a user only
-- marks its history pending (CF.history_pending = the user's hash); the store starts it right after
-- (service/store/cluster_history.py) and writes the snapshot in with history_snapshot.lua.
local on_cluster = ARGV[19] == '1'
local history_outside = on_cluster and ctx_user ~= ''
-- A cluster: the fold data of this session id's earlier state when that was still its user's running session
-- (the id reused after its window expired): the store folds it, as a single Redis's fold_previous does here.
local own_fold = nil

local function num(value)
  return tonumber(value) or 0
end

-- The session's context hash lives as long as the session, or, once it has a user, as long as the user's
-- record: the user's next session folds it in, however much later that session starts.
local function expire_context(has_user)
  redis.call('EXPIRE', ctx_key, has_user and user_ttl or tonumber(ARGV[6]))
end

-- A session whose history is still pending on a cluster keeps the user's TTL too: it is already the user's running
-- session, or about to be, and the user's next session folds it.
local function refresh_context_ttl()
  if on_cluster then
    local owner = redis.call('HMGET', ctx_key, CF.user, CF.history_pending)
    expire_context(owner[1] ~= false or owner[2] ~= false)
    return
  end
  expire_context(redis.call('HEXISTS', ctx_key, CF.user) == 1)
end

-- The counters a click's context row reads, in this order (`row_of`'s `c`); update_context reads them with the
-- user, the click's item and its category in ONE HMGET, so a click costs one read and one write of the hash.
local ROW_FIELDS = {CF.first_ts, CF.cart_opened_ts, CF.items, CF.categories, CF.open_items, CF.clicks,
  CF.hist_sessions, CF.hist_events, CF.hist_carts, CF.hist_orders, CF.hist_gap_ms, CF.hist_cart_items_open}

-- The click's raw context in CONTEXT_NAMES order; durations in ms. `c`: ROW_FIELDS' values after the click;
-- `cart` is the state after the click.
local function row_of(c, ts, seen_before, carted_before, in_hist_cart, cart)
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

-- A cluster's row of a session whose history is still pending ends with one more value, 1: the store starts the
-- history and fills the row's history values in (service/store/cluster_history.py).
local function mark_pending(row, pending)
  if pending then
    row[#row + 1] = 1
    for i = 1, own_fold and #own_fold or 0 do
      row[#row + 1] = own_fold[i]
    end
  end
  return row
end

-- A cluster, at a first click: the earlier state under this id, if it is the user's unfolded session.
local function unfolded_state()
  local owner = redis.call('HMGET', ctx_key, CF.user, CF.history_pending)
  if owner[1] ~= ctx_user and owner[2] ~= ctx_user then
    return nil
  end
  return fold_payload(redis.call('HGETALL', ctx_key))
end

-- The context row of the state as stored (a retry's: no new click applied).
local function context_row(ts, seen_before, carted_before, in_hist_cart, cart)
  local row = row_of(redis.call('HMGET', ctx_key, unpack(ROW_FIELDS)), ts, seen_before, carted_before, in_hist_cart,
    cart)
  return mark_pending(row, history_outside and redis.call('HEXISTS', ctx_key, CF.history_pending) == 1)
end

-- UserHistory.fold_running: the user's previous session joins the closed history (history.lua's fold).
local function fold_running(running_key)
  local flat = redis.call('HGETALL', running_key)
  if #flat == 0 then
    return  -- deleted, or past the user's TTL: nothing to fold
  end
  fold_into(user_key, fold_payload(flat))
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
  local values, items = history_of(user_key)
  write_history(ctx_key, ctx_user, values, ctx_ts, items, false)
  redis.call('HSET', user_key, UF.running, ctx_session)
  redis.call('EXPIRE', user_key, user_ttl)
end

-- update_context: apply one new click (event `index`) to the state and return its context row.
-- One HMGET reads the row's counters, the newest ts, the cart/order counts, the user, the item's bits and the
-- category's flag; one HSET writes what changed; one EXPIRE. Same state as model/context_tracker.py's
-- update_context (the parity tests in tests/test_context_state.py hold it).
local function update_context(index, cart_before, cart_after)
  if index == 0 then
    local with_history = user_key ~= nil and ctx_user ~= ''
    if with_history then
      fold_previous()
    elseif history_outside then
      own_fold = unfolded_state()
    end
    redis.call('DEL', ctx_key)  -- a stale state of an earlier session under this id (its window expired)
    redis.call('HSET', ctx_key, CF.first_ts, ARGV[3], CF.max_ts, ARGV[3])
    if with_history then
      snapshot_history()
    elseif history_outside then
      redis.call('HSET', ctx_key, CF.history_pending, ctx_user)
    end
  end
  local n_row = #ROW_FIELDS
  local fields = {unpack(ROW_FIELDS)}
  fields[n_row + 1], fields[n_row + 2], fields[n_row + 3], fields[n_row + 4] = CF.max_ts, CF.carts, CF.orders, CF.user
  local item_field = ctx_item ~= '' and (ITEM_PREFIX .. ctx_item) or nil
  local category_field = ctx_category ~= '' and (CATEGORY_PREFIX .. ctx_category) or nil
  local at_item, at_category = n_row + 5, n_row + 5
  if item_field then
    fields[at_item] = item_field
    at_category = at_item + 1
  end
  if category_field then
    fields[at_category] = category_field
  end
  local at_pending = #fields + 1
  if on_cluster then
    fields[at_pending] = CF.history_pending
  end
  local c = redis.call('HMGET', ctx_key, unpack(fields))
  -- row counters (c[1..n_row]) are updated in place, so `row_of(c, ...)` sees the state after the click
  local writes = {}
  local function put(field, value)
    writes[#writes + 1] = field
    writes[#writes + 1] = value
  end
  c[6] = num(c[6]) + 1
  put(CF.clicks, c[6])
  if ctx_ts > num(c[n_row + 1]) then
    put(CF.max_ts, ARGV[3])
  end
  local seen_before, carted_before, in_hist_cart = 0, 0, 0
  if item_field then
    local bits = num(c[at_item])
    seen_before = bit.band(bits, ITEM_SEEN) ~= 0 and 1 or 0
    carted_before = bit.band(bits, ITEM_CARTED) ~= 0 and 1 or 0
    in_hist_cart = bit.band(bits, ITEM_HIST_OPEN) ~= 0 and 1 or 0
    if seen_before == 0 then
      c[3] = num(c[3]) + 1
      put(CF.items, c[3])
      bits = bit.bor(bits, ITEM_SEEN)
    end
    if ctx_action == ctx_add_cart then
      if bit.band(bits, ITEM_OPEN) == 0 then
        c[5] = num(c[5]) + 1
        put(CF.open_items, c[5])
      end
      bits = bit.band(bit.bor(bits, ITEM_CARTED + ITEM_OPEN), bit.bnot(ITEM_CLOSED))
    elseif ctx_action == ctx_order then
      if bit.band(bits, ITEM_OPEN) ~= 0 then
        c[5] = num(c[5]) - 1
        put(CF.open_items, c[5])
      end
      bits = bit.bor(bit.band(bits, bit.bnot(ITEM_OPEN)), ITEM_CLOSED)
    end
    put(item_field, bits)
  end
  if category_field and not c[at_category] then
    c[4] = num(c[4]) + 1
    put(CF.categories, c[4])
    put(category_field, 1)
  end
  if ctx_action == ctx_add_cart then
    put(CF.carts, num(c[n_row + 2]) + 1)
  elseif ctx_action == ctx_order then
    put(CF.orders, num(c[n_row + 3]) + 1)
  end
  if cart_after == CART_OPEN and cart_before ~= CART_OPEN then
    c[2] = ARGV[3]
    put(CF.cart_opened_ts, ARGV[3])
  end
  redis.call('HSET', ctx_key, unpack(writes))
  local pending = on_cluster and c[at_pending] ~= false
  expire_context(c[n_row + 4] ~= false or pending)
  return mark_pending(row_of(c, ctx_ts, seen_before, carted_before, in_hist_cart, cart_after),
    pending and history_outside)
end
