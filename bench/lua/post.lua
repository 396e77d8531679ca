-- POST /events with a fixed, valid body on every request.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

wrk.method = "POST"
wrk.body = '{"user_id":"u-42","description":"Your order has shipped"}'
wrk.headers["Content-Type"] = "application/json"
