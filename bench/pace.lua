-- wrk script for bench/compare.sh's PAUSE: each connection waits WRK_PAUSE_MS milliseconds
-- after each answer before it sends its next request, so the load is a fixed rate below
-- what either server can do, and p50/p99 compare the two servers' latency at the same
-- load (at full load, as without PAUSE, a slower server's queue makes its latency).
--
--   WRK_PAUSE_MS=2 wrk ... --script bench/pace.lua URL
--
-- bench/post_entry.lua runs this file too. wrk looks for `delay` before any
-- thread's `init` runs, so it is defined here, at the top.

local pause = tonumber(os.getenv("WRK_PAUSE_MS") or "")
if pause then
   function delay()
      return pause
   end
end
