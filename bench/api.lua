-- wrk script for bench/api. BENCH_MODE=get reads one request; BENCH_MODE=create
-- creates k8s-namespace requests, each with its own name and Idempotency-Key.
-- Prints p50/p99 latency, requests per second and any non-2xx answers.
local mode = os.getenv("BENCH_MODE") or "get"
local token = os.getenv("SLIPWAY_TOKEN") or ""
local request_id = os.getenv("BENCH_REQUEST_ID") or "1"
local run = os.getenv("BENCH_RUN") or "r"

local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local counter = 0
-- Globals, not locals: done() reads them from each thread with thread:get,
-- which sees only a thread's globals (a local always read as nil, so failures
-- went uncounted).
failures = 0
first_failure = nil

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. token
  if mode == "create" then
    wrk.method = "POST"
    wrk.path = "/api/v1/requests"
    wrk.headers["Content-Type"] = "application/json"
  else
    wrk.method = "GET"
    wrk.path = "/api/v1/requests/" .. request_id
  end
end

if mode == "create" then
  request = function()
    counter = counter + 1
    local key = string.format("%s-%d-%d", run, tid, counter)
    local name = string.format("b%s-%d-%d", run, tid, counter)
    wrk.headers["Idempotency-Key"] = key
    local body = string.format(
      '{"type":"k8s-namespace","params":{"name":"%s","team":"payments",' ..
      '"environment":"staging","cpu_limit":1,"memory_limit_gi":1,"admins":["alice"]}}',
      name)
    return wrk.format(nil, nil, nil, body)
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    failures = failures + 1
    if first_failure == nil then
      first_failure = status .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local failed = 0
  local example = nil
  for _, thread in ipairs(threads) do
    failed = failed + (thread:get("failures") or 0)
    example = example or thread:get("first_failure")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT %s: %d requests in %.1fs, %.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, non-2xx %d, socket errors %d\n",
    mode, summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    failed, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  if example then
    io.write("first non-2xx: " .. example .. "\n")
  end
end
