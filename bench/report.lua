-- wrk: help-desk report pages. KW_BENCH_COOKIE is a signed-in session's
-- cookie; KW_BENCH_PATHS names a file of paths (one per line), asked for in
-- turn.
package.path = os.getenv("KW_BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local cookie = os.getenv("KW_BENCH_COOKIE")
local paths = {}
for line in io.lines(os.getenv("KW_BENCH_PATHS")) do
   table.insert(paths, line)
end
local n = 0

function request()
   n = n + 1
   return wrk.format("GET", paths[n % #paths + 1], { ["Cookie"] = cookie })
end

done = common.done
