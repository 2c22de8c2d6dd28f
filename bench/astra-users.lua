-- wrk script for GET /astra/users/{u}/token spread over all users: each
-- request picks one of ASTRA_USERS users (PREFIX0..) at random. Reports
-- through bench/wrk-report.lua (path in WRK_REPORT), as bench/run.sh does.
local users = tonumber(os.getenv("ASTRA_USERS") or "100000")
local prefix = os.getenv("ASTRA_PREFIX") or "u"
dofile(os.getenv("WRK_REPORT"))

init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

request = function()
  return wrk.format("GET", "/astra/users/" .. prefix .. math.random(0, users - 1) .. "/token")
end
