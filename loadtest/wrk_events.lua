-- wrk: closed-loop clicks on POST /v1/sessions/{id}/events (the saturation step of `session-intent bench service`).
--   wrk -t1 -c64 -d10s -s loadtest/wrk_events.lua http://127.0.0.1:8000
-- Random sessions out of a pool (windows fill to N and slide), a unique event_id per request, no ts
-- (the service stamps "now"). SI_WRK_KEY, if set, is sent as X-API-Key. Every request is a real, distinct click:
-- nothing is answered from a cache.
-- The action names (SI_WRK_ACTIONS, model.features.ACTIONS) and the session pool (SI_WRK_SESSIONS) are
-- bench/load/click_pools.py's, which the benchmarks pass on every run; the fallbacks below are for hand runs
-- (tests/test_click_pools.py holds them equal).
local function env_list(name, fallback)
  local raw = os.getenv(name)
  if not raw or raw == "" then return fallback end
  local list = {}
  for word in raw:gmatch("[^,]+") do table.insert(list, word) end
  return list
end
actions = env_list("SI_WRK_ACTIONS", {"category", "view_product", "home", "ask_question", "order", "contact",
                                      "add_cart", "view_cart", "search", "concerned", "account", "recommend"})
sessions = tonumber(os.getenv("SI_WRK_SESSIONS") or "20000")
local key = os.getenv("SI_WRK_KEY")
local threads = 0
local counter = 0
-- A global, not a local: setup's thread:set("tag", ...) writes each thread's global, which a local would hide,
-- and every thread would then seed alike and send the same event_ids to the same sessions (replayed, not scored).
tag = "t0"
local thread_list = {}  -- the main state's handles: done() reads each thread's `statuses`

function setup(thread)
  threads = threads + 1
  thread:set("tag", "t" .. threads)
  table.insert(thread_list, thread)
end

-- Answers outside 2xx by status, per thread (a global: thread:get reads globals). wrk's own count (errors.status)
-- says how many answered >= 400, not which status, and a bench that saw some must say which.
statuses = {}

function response(status, headers, body)
  if status < 200 or status > 299 then
    local k = tostring(status)
    statuses[k] = (statuses[k] or 0) + 1
  end
end

function init(args)
  math.randomseed(os.time() + #tag * 7919 + (tonumber(tag:sub(2)) or 0))
  wrk.headers["Content-Type"] = "application/json"
  if key and key ~= "" then wrk.headers["X-API-Key"] = key end
end

function request()
  counter = counter + 1
  local session = "wrk-" .. math.random(1, sessions)
  local body = string.format('{"event_id":"%s-%d-%d","action":"%s","from_ad":%s}', tag, os.time(), counter,
                             actions[math.random(1, #actions)], math.random() < 0.1 and "true" or "false")
  return wrk.format("POST", "/v1/sessions/" .. session .. "/events", nil, body)
end

-- SI_WRK_THINK_MS set: each connection waits an exponential think time of that mean before every click, so
-- C connections offer about C / (think + latency) clicks/s as a superposition of C renewal processes:
-- Poisson-like arrivals while the latency is small against the think time (the light-client Poisson step of
-- `session-intent bench service`). wrk takes whole milliseconds.
local think_ms = tonumber(os.getenv("SI_WRK_THINK_MS") or "")
if think_ms and think_ms > 0 then
  function delay()
    return math.floor(-think_ms * math.log(1 - math.random()) + 0.5)
  end
end

local function status_counts()
  local total = {}
  for _, thread in ipairs(thread_list) do
    for k, n in pairs(thread:get("statuses") or {}) do total[k] = (total[k] or 0) + n end
  end
  local parts = {}
  for k, n in pairs(total) do parts[#parts + 1] = string.format('"%s":%d', k, n) end
  table.sort(parts)
  return "{" .. table.concat(parts, ",") .. "}"
end

-- One JSON line for the benchmark to parse (latencies in microseconds; statuses: answers outside 2xx by status).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'SI_WRK {"requests":%d,"duration_us":%d,"non_2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"statuses":%s}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    status_counts()))
end
