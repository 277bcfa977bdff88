-- wrk script for bench/scale. BENCH_MODE picks what each request does:
--   get        GET BENCH_PATH (with BENCH_COOKIE or the token)
--   precheck   POST /api/v1/requests/precheck for a production database
--   create     POST /api/v1/requests, a staging namespace with its own name and key
-- Prints one RESULT line: requests/s, p50/p95/p99, non-2xx answers.
local mode = os.getenv("BENCH_MODE") or "get"
local token = os.getenv("SLIPWAY_TOKEN") or ""
local cookie = os.getenv("BENCH_COOKIE") or ""
local path = os.getenv("BENCH_PATH") or "/"
local label = os.getenv("BENCH_LABEL") or mode
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
  if cookie ~= "" then
    wrk.headers["Cookie"] = cookie
  else
    wrk.headers["Authorization"] = "Bearer " .. token
  end
  if mode == "precheck" then
    wrk.method = "POST"
    wrk.path = "/api/v1/requests/precheck"
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = '{"type":"postgres-database","params":{"name":"ledger","team":"payments",' ..
      '"environment":"prod","size":"small","storage_gb":20,"version":"16"}}'
  elseif mode == "create" then
    wrk.method = "POST"
    wrk.path = "/api/v1/requests"
    wrk.headers["Content-Type"] = "application/json"
  else
    wrk.method = "GET"
    wrk.path = path
  end
end

if mode == "create" then
  request = function()
    counter = counter + 1
    wrk.headers["Idempotency-Key"] = string.format("%s-%d-%d", run, tid, counter)
    local body = string.format(
      '{"type":"k8s-namespace","params":{"name":"b%s-%d-%d","team":"payments",' ..
      '"environment":"staging","cpu_limit":1,"memory_limit_gi":1,"admins":["alice"]}}',
      run, tid, counter)
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
    "RESULT %s %.0f req/s p50 %.2f p95 %.2f p99 %.2f ms non2xx %d\n",
    label, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, failed))
  if example then
    io.write("first non-2xx: " .. example .. "\n")
  end
end
