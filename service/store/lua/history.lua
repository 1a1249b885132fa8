-- The shopper's history record (docs/redis.md "Context state"), shared by append_event.lua (single Redis: the
-- fold and the snapshot run inside the click's call) and the cluster's history_*.lua (docs/redis.md "Redis
-- Cluster: history at a session's first click"). Mirrors model/context_tracker.py UserHistory.fold_running and
-- start_session.

-- A session's fold data from its context hash's HGETALL: {clicks, add_carts, orders, newest ts (ms), k, the k
-- item fields it left open (last op a cart), the item fields it closed (last op an order)}.
local function fold_payload(flat)
  local counters, open, closed = {}, {}, {}
  for i = 1, #flat, 2 do
    local field = flat[i]
    if string.sub(field, 1, #ITEM_PREFIX) == ITEM_PREFIX then
      local bits = tonumber(flat[i + 1])
      if bit.band(bits, ITEM_OPEN) ~= 0 then
        open[#open + 1] = field
      elseif bit.band(bits, ITEM_CLOSED) ~= 0 then
        closed[#closed + 1] = field
      end
    else
      counters[field] = flat[i + 1]
    end
  end
  local out = {counters[CF.clicks] or '0', counters[CF.carts] or '0', counters[CF.orders] or '0',
    counters[CF.max_ts] or '0', #open}
  for i = 1, #open do
    out[#out + 1] = open[i]
  end
  for i = 1, #closed do
    out[#out + 1] = closed[i]
  end
  return out
end

-- UserHistory.fold_running with the running session's fold data (`fold_payload`'s, from any slot).
local function fold_into(user_key, p)
  redis.call('HINCRBY', user_key, UF.sessions, 1)
  redis.call('HINCRBY', user_key, UF.events, tonumber(p[1]))
  redis.call('HINCRBY', user_key, UF.carts, tonumber(p[2]))
  redis.call('HINCRBY', user_key, UF.orders, tonumber(p[3]))
  local last = redis.call('HGET', user_key, UF.last_ts)
  local newest = tonumber(p[4])
  if not last or newest > tonumber(last) then
    redis.call('HSET', user_key, UF.last_ts, string.format('%.0f', newest))
  end
  local n_open = tonumber(p[5])
  for i = 6, 5 + n_open do
    redis.call('HINCRBY', user_key, UF.open_items, redis.call('HSETNX', user_key, p[i], 1))
  end
  for i = 6 + n_open, #p do
    redis.call('HINCRBY', user_key, UF.open_items, 0 - redis.call('HDEL', user_key, p[i]))
  end
end

-- The history a new session starts from: {sessions, clicks, add_carts, orders, newest ts (ms) or '', open items},
-- and the user's open item fields.
local function history_of(user_key)
  local u = redis.call('HMGET', user_key, UF.sessions, UF.events, UF.carts, UF.orders, UF.last_ts, UF.open_items)
  local values = {tonumber(u[1]) or 0, tonumber(u[2]) or 0, tonumber(u[3]) or 0, tonumber(u[4]) or 0, u[5] or '',
    tonumber(u[6]) or 0}
  local items = {}
  local flat = redis.call('HGETALL', user_key)
  for i = 1, #flat, 2 do
    if string.sub(flat[i], 1, #ITEM_PREFIX) == ITEM_PREFIX then
      items[#items + 1] = flat[i]
    end
  end
  return values, items
end

-- start_session's snapshot into a session's context hash: the six history values (the gap from the session's
-- first click at `first_ts`) and bit ITEM_HIST_OPEN on the user's open items. `merge`: the hash may already
-- hold those items' bits (a cluster writes the snapshot after the first click), so they are OR'ed in.
local function write_history(ctx, user, values, first_ts, items, merge)
  local gap = values[5] ~= '' and (first_ts - tonumber(values[5])) or 0
  redis.call('HSET', ctx, CF.user, user, CF.hist_sessions, values[1], CF.hist_events, values[2],
    CF.hist_carts, values[3], CF.hist_orders, values[4], CF.hist_gap_ms, string.format('%.0f', gap),
    CF.hist_cart_items_open, values[6])
  for i = 1, #items do
    local bits = merge and tonumber(redis.call('HGET', ctx, items[i])) or 0
    redis.call('HSET', ctx, items[i], bit.bor(bits, ITEM_HIST_OPEN))
  end
end
