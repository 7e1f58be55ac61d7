-- wrk script for bench/load.sh and bench/sqlite.sh: POST /notes with an urlencoded form
-- and the CSRF credentials the server requires (docs/notes-contract.md).
--
--   wrk ... --script bench/post_note.lua http://127.0.0.1:PORT/notes -- COOKIE TOKEN [BYTES]
--
-- COOKIE: the Cookie header of a loaded form (GET /notes/new; it holds the `_csrf` cookie);
-- TOKEN: that form's hidden `csrf_token`, sent as X-CSRF-Token (bench/lib.sh's sign_in
-- gets both); BYTES: the content size of each note (optional; without it every note has the
-- same short sentence, about 125 bytes).
--
-- Every request carries a distinct title (thread number + counter) and inserts one note in
-- one write transaction. The server answers 303 See Other (redirect to the new note); wrk
-- itself only counts statuses outside 2xx/3xx ("Non-2xx or 3xx responses"), so this script
-- counts every status other than 303 (a CSRF rejection is a 403) and reports it as
-- "Unexpected status (not 303): N".

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

function init(args)
   if args[1] == nil or args[1] == "" or args[2] == nil or args[2] == "" then
      error("post_note.lua needs the arguments COOKIE TOKEN [BYTES] after --")
   end
   counter = 0
   unexpected = 0
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   wrk.headers["Cookie"] = args[1]
   wrk.headers["X-CSRF-Token"] = args[2]
   if args[3] == nil or args[3] == "" then
      content = "Posted+by+wrk+from+bench%2Fload.sh.+Lorem+ipsum+dolor+sit+amet%2C+"
         .. "consectetur+adipiscing+elit%2C+sed+do+eiusmod+tempor+incididunt."
      title = "Load+test+note+"
   else
      local size = tonumber(args[3])
      if size == nil then
         error("post_note.lua: BYTES must be a number, not " .. args[3])
      end
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
      title = "Bench+note+"
   end
end

function request()
   counter = counter + 1
   local body = "title=" .. title .. thread_id .. "-" .. counter .. "&content=" .. content
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
