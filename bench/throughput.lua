-- wrk script for bench/throughput: each request submits an auto-approved
-- namespace (environment dev) with its own name and Idempotency-Key; the run id
-- keeps names apart between the wrk processes aimed at different replicas.
local token = os.getenv("SLIPWAY_TOKEN") or ""
local run = os.getenv("BENCH_RUN") or "r"
local threads = {}
local counter = 0
-- Globals, not locals: done() reads them from each thread with thread:get,
-- which sees only a thread's globals (a local always read as nil, so failures
-- went uncounted).
failures = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.path = "/api/v1/requests"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
end

request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = string.format("%s-%d-%d", run, tid, counter)
  local body = string.format(
    '{"type":"k8s-namespace","params":{"name":"t%s-%d-%d","team":"payments",' ..
    '"environment":"dev","cpu_limit":1,"memory_limit_gi":1}}', run, tid, counter)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
  end
  io.write(string.format("RESULT submitted=%d non2xx=%d p50=%.1f p99=%.1f\n",
    summary.requests, failed, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
