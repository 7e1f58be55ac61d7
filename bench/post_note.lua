-- wrk script for bench/load.sh: POST /notes with an urlencoded form.
--
-- Every request carries a distinct title (thread number + counter). The server is
-- expected to answer 303 See Other (redirect to the new note); wrk itself already counts
-- statuses outside 2xx/3xx as "Non-2xx or 3xx responses", and this script additionally
-- counts every status other than 303 and reports it as "Unexpected status (not 303): N".

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
end

function request()
   counter = counter + 1
   local body = "title=Load+test+note+" .. thread_id .. "-" .. counter
      .. "&content=Posted+by+wrk+from+bench%2Fload.sh.+Lorem+ipsum+dolor+sit+amet%2C+"
      .. "consectetur+adipiscing+elit%2C+sed+do+eiusmod+tempor+incididunt."
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
