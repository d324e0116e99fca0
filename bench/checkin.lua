-- wrk: durable check-ins, each escrowing a new recovery key, spread over the
-- registered devices listed in the file named by KW_BENCH_DEVICES (a Lua
-- table of {secret = …, volume = …}).
package.path = os.getenv("KW_BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local devices = dofile(os.getenv("KW_BENCH_DEVICES"))
local next_device = 1
local threads = {}

function setup(thread)
   thread:set("offset", #threads)
   table.insert(threads, thread)
end

function init(args)
   math.randomseed(os.time() + offset * 7919)
   next_device = 1 + offset
end

function request()
   local d = devices[next_device]
   next_device = next_device % #devices + 1
   local body = string.format(
      '{"os": "Windows 11 Pro 23H2", "volumes": [{"id": "%s", "mount": "C:", ' ..
      '"type": "os", "protection": "on", "encryption": "xts_aes_256", ' ..
      '"percent_encrypted": 100, "recovery_keys": [{"key_id": "%s", ' ..
      '"recovery_password": "%s"}]}], "logons": [{"user": "CORP\\\\user", ' ..
      '"type": "local"}]}', d.volume, common.guid(), common.recovery_password())
   return wrk.format("POST", "/api/v1/checkin",
      { ["Authorization"] = "Bearer " .. d.secret,
        ["Content-Type"] = "application/json" }, body)
end

done = common.done
