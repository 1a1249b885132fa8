-- wrk: closed-loop clicks that carry user_id, item_id and category_id, so the context state works on every click
-- (`session-intent bench cpu-ab --ids`).
--   wrk -t1 -c64 -d10s -s loadtest/wrk_events_ids.lua http://127.0.0.1:8000
-- Everything but the request comes from loadtest/wrk_events.lua (setup, init, SI_WRK_THINK_MS, the SI_WRK line).
-- Bounded pools, so that the state reaches a steady size:
--   SI_WRK_SESSIONS sessions (default 20000); session s belongs to user s % SI_WRK_USERS (default 2000; cpu-ab
--   passes a tenth of the sessions), so each shopper returns for about ten sessions: their history is read and folded;
--   each session browses its own shelf of 8 items out of SI_WRK_ITEMS (default 5000), so items are seen again
--   within a session; item i is in category i % SI_WRK_CATEGORIES (default 100).
-- The action names are model.features.ACTIONS.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_events.lua")

local actions = {"category", "view_product", "home", "ask_question", "order", "contact", "add_cart",
                 "view_cart", "search", "concerned", "account", "recommend"}
local sessions = tonumber(os.getenv("SI_WRK_SESSIONS") or "20000")
local users = tonumber(os.getenv("SI_WRK_USERS") or "2000")
local items = tonumber(os.getenv("SI_WRK_ITEMS") or "5000")
local categories = tonumber(os.getenv("SI_WRK_CATEGORIES") or "100")
local shelf = 8
local clicks = 0

function request()
  clicks = clicks + 1
  local s = math.random(1, sessions)
  local item = (s * 7919 + math.random(0, shelf - 1)) % items
  local body = string.format(
    '{"event_id":"ids-%d-%d-%d","action":"%s","from_ad":%s,"user_id":"u-%d","item_id":"i-%d","category_id":"c-%d"}',
    os.time(), clicks, math.random(1, 1000000000), actions[math.random(1, #actions)],
    math.random() < 0.1 and "true" or "false",
    s % users, item, item % categories)
  return wrk.format("POST", "/v1/sessions/wrk-" .. s .. "/events", nil, body)
end
