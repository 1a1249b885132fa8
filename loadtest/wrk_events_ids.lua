-- wrk: closed-loop clicks that carry user_id, item_id and category_id, so the context state works on every click
-- (`session-intent bench cpu-ab --ids`).
--   wrk -t1 -c64 -d10s -s loadtest/wrk_events_ids.lua http://127.0.0.1:8000
-- Everything but the request comes from loadtest/wrk_events.lua (setup, init, SI_WRK_THINK_MS, the SI_WRK line).
-- The pools are bench/load/click_pools.py's (its docstring says why they are bounded): session s belongs to user
-- s % SI_WRK_USERS and browses a shelf of SI_WRK_SHELF items starting at item s * SI_WRK_STRIDE % SI_WRK_ITEMS;
-- item i is in category i % SI_WRK_CATEGORIES. The benchmarks pass every SI_WRK_* on each run; the fallbacks
-- below are for hand runs (tests/test_click_pools.py holds them equal). `actions` and `sessions` come from
-- wrk_events.lua.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_events.lua")

local users = tonumber(os.getenv("SI_WRK_USERS") or "2000")
local items = tonumber(os.getenv("SI_WRK_ITEMS") or "5000")
local categories = tonumber(os.getenv("SI_WRK_CATEGORIES") or "100")
local shelf = tonumber(os.getenv("SI_WRK_SHELF") or "8")
local stride = tonumber(os.getenv("SI_WRK_STRIDE") or "7919")
local clicks = 0

function request()
  clicks = clicks + 1
  local s = math.random(1, sessions)
  local item = (s * stride + math.random(0, shelf - 1)) % items
  local body = string.format(
    '{"event_id":"ids-%s-%d-%d-%d","action":"%s","from_ad":%s,"user_id":"u-%d","item_id":"i-%d","category_id":"c-%d"}',
    tag, os.time(), clicks, math.random(1, 1000000000), actions[math.random(1, #actions)],
    math.random() < 0.1 and "true" or "false",
    s % users, item, item % categories)
  return wrk.format("POST", "/v1/sessions/wrk-" .. s .. "/events", nil, body)
end
