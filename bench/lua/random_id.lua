-- GET or PUT /events/{id} for ids drawn at random from the file named by BENCH_IDS (one id a
-- line, written by bench_driver). BENCH_METHOD=PUT sends {"status":"Processed"}.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

local method = os.getenv("BENCH_METHOD") or "GET"
local body = nil
local headers = nil
if method ~= "GET" then
  body = '{"status":"Processed"}'
  headers = { ["Content-Type"] = "application/json" }
end

local ids, count = {}, 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

function init(args)
  for line in io.lines(os.getenv("BENCH_IDS")) do
    count = count + 1
    ids[count] = line
  end
  -- Each wrk thread draws its own sequence.
  math.randomseed(os.time() + 7919 * (thread_no or 0))
end

function request()
  return wrk.format(method, "/events/" .. ids[math.random(count)], headers, body)
end
