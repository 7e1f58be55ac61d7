-- wrk script for bench/sqlite.sh: POST /notes with an urlencoded form and the CSRF token.
--
-- Arguments (after `--`): the Cookie header of a loaded form (it holds the `_csrf` cookie),
-- the form's `csrf_token` (sent as X-CSRF-Token), and the content size in bytes (default
-- 200). Every request carries a distinct title (thread number + counter) and inserts one
-- note in one write transaction. The server answers 303; every other status is counted and
-- reported as "Unexpected status (not 303): N" (wrk itself only counts statuses outside
-- 2xx/3xx, and a CSRF rejection is a 403).

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

function init(args)
   counter = 0
   unexpected = 0
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   wrk.headers["Cookie"] = args[1] or ""
   wrk.headers["X-CSRF-Token"] = args[2] or ""
   local size = tonumber(args[3] or "200")
   local words = { "lorem", "ipsum", "lantern", "dolor", "harbor", "meadow", "copper", "willow" }
   local parts = {}
   local length = 0
   local i = 0
   while length < size do
      i = i + 1
      local word = words[(i % #words) + 1]
      table.insert(parts, word)
      length = length + #word + 1
   end
   content = table.concat(parts, "+")
end

function request()
   counter = counter + 1
   local body = "title=SQLite+bench+note+" .. thread_id .. "-" .. counter .. "&content=" .. content
   return wrk.format(nil, "/notes", nil, body)
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
