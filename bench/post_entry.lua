-- wrk script for bench/compare.sh: POST /entries, the form workload of issue 13, against
-- bench-bare or bench-app alike.
--
--   wrk ... --script bench/post_entry.lua http://127.0.0.1:PORT/entries -- COOKIE TOKEN ORIGIN
--
-- COOKIE: the Cookie header (`_session=…; _csrf=…`) the script got from GET /login and
-- GET /entries; TOKEN: the page's hidden csrf_token, sent in the form body (the browser's
-- path: the server must read the body to find it); ORIGIN: the Origin header a browser
-- sends with a form post (`http://127.0.0.1:PORT`), which both servers check.
--
-- Every request carries a distinct name (thread number + counter) and inserts one row in
-- one write transaction; the answer must be 303. wrk only counts statuses outside
-- 2xx/3xx, so this script counts every status other than 303 (a CSRF rejection is a 403,
-- a validation failure a 422) and reports "Unexpected status (not 303): N".

local threads = {}
local next_id = 0

-- compare.sh's PAUSE: bench/pace.lua, next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "pace.lua")

function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

function init(args)
   if args[1] == nil or args[1] == "" or args[2] == nil or args[2] == "" or args[3] == nil then
      error("post_entry.lua needs the arguments COOKIE TOKEN ORIGIN after --")
   end
   counter = 0
   unexpected = 0
   token = args[2]
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   wrk.headers["Cookie"] = args[1]
   wrk.headers["Origin"] = args[3]
   -- About the size of a seeded row, with characters the page must escape later.
   message = "Posted+by+wrk+from+bench%2Fcompare.sh%3A+%3Cb%3Ebold%3C%2Fb%3E+%26+%22quoted%22.+"
      .. "Lorem+ipsum+dolor+sit+amet%2C+consectetur+adipiscing+elit."
end

function request()
   counter = counter + 1
   local body = "csrf_token=" .. token .. "&name=wrk+" .. thread_id .. "-" .. counter
      .. "&message=" .. message
   return wrk.format(nil, "/entries", nil, body)
end

function response(status, headers, body)
   if status ~= 303 then
      unexpected = unexpected + 1
   end
end

function done(summary, latency, requests)
   local total = 0
   for _, thread in ipairs(threads) do
      total = total + (thread:get("unexpected") or 0)
   end
   io.write(string.format("Unexpected status (not 303): %d\n", total))
end
