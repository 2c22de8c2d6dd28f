-- wrk script for GET /astra/users/{u}/token spread over all users: each
-- request picks one of ASTRA_USERS users (PREFIX0..) at random. Reports
-- through bench/wrk-report.lua (path in WRK_REPORT), as bench/run.sh does.
local users = tonumber(os.getenv("ASTRA_USERS") or "100000")
local prefix = os.getenv("ASTRA_PREFIX") or "u"
dofile(os.getenv("WRK_REPORT"))

init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

-- ASTRA_SEQUENTIAL=1 walks the users in order instead (one wrk thread asks
-- for every user once per `users` requests): the cache warm-up pass.
local sequential = os.getenv("ASTRA_SEQUENTIAL") == "1"
local next_user = 0

request = function()
  local user
  if sequential then
    user = next_user % users
    next_user = next_user + 1
  else
    user = math.random(0, users - 1)
  end
  return wrk.format("GET", "/astra/users/" .. prefix .. user .. "/token")
end
