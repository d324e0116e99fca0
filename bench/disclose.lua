-- wrk: self-service disclosures. The file named by KW_BENCH_SESSIONS is a
-- Lua table of signed-in sessions {cookie = …, csrf = …, prefixes = {…}};
-- each request asks for one of that user's keys by its first 8 characters.
package.path = os.getenv("KW_BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local sessions = dofile(os.getenv("KW_BENCH_SESSIONS"))
local n = 0
local threads = {}

function setup(thread)
   thread:set("offset", #threads)
   table.insert(threads, thread)
end

function init(args)
   n = offset * 7
end

function request()
   n = n + 1
   local s = sessions[n % #sessions + 1]
   local prefix = s.prefixes[math.floor(n / #sessions) % #s.prefixes + 1]
   local body = "key_id=" .. prefix .. "&reason=lost_pin&csrf_token=" .. s.csrf
   return wrk.format("POST", "/recover",
      { ["Cookie"] = s.cookie,
        ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
end

done = common.done
