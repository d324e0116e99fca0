-- Shared by the wrk scripts: a done() that prints one JSON line with what
-- bench/run needs (requests, 2xx, errors, latency percentiles).
local M = {}

function M.done(summary, latency, requests)
   local e = summary.errors
   local non2xx = e.status
   io.write(string.format(
      '{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
      '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, non2xx,
      e.connect + e.read + e.write + e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max))
end

-- A random recovery password: 8 groups, each 11 x a 16-bit value.
function M.recovery_password()
   local g = {}
   for i = 1, 8 do
      g[i] = string.format("%06d", 11 * math.random(0, 65535))
   end
   return table.concat(g, "-")
end

function M.guid()
   local h = {}
   for i = 1, 16 do
      h[i] = string.format("%02X", math.random(0, 255))
   end
   local s = table.concat(h)
   return s:sub(1, 8) .. "-" .. s:sub(9, 12) .. "-" .. s:sub(13, 16) .. "-" ..
      s:sub(17, 20) .. "-" .. s:sub(21, 32)
end

return M
