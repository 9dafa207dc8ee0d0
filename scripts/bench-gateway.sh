#!/usr/bin/env bash
# HTTP load on the gateway's Okta hook against a bare axum handler, in the same run.
#
# Both run in one process (gateway/examples/bench_server.rs, release build): the hook
# over a provider that accepts at once, with the default limits and the memory store,
# and a handler that answers a JSON body of the same size. wrk (Debian package) drives
# each with 64 connections for DURATION seconds; every hook request has its own event id,
# number, Okta user and IP, so no limit refuses it (a check run counts the answers).
# Prints requests per second, p50/p99 latency and the throughput ratio.
#
# usage: ./scripts/bench-gateway.sh [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}

if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi

cargo build --quiet --release -p phone-otp-gateway --example bench_server
workdir=$(mktemp -d)
./target/release/examples/bench_server >"$workdir/urls" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$workdir"' EXIT
for _ in $(seq 1 100); do
  grep -q '^BARE=' "$workdir/urls" 2>/dev/null && break
  sleep 0.05
done
gateway=$(sed -n 's/^GATEWAY=//p' "$workdir/urls")
bare=$(sed -n 's/^BARE=//p' "$workdir/urls")

cat >"$workdir/okta.lua" <<'LUA'
-- One Okta telephony hook request per call, each with fresh ids (see bench-gateway.sh).
local counter = 0
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Basic YmVuY2g6YmVuY2gtc2VjcmV0",
}
-- Each run (RUN=0..4) and thread gets its own digit, so numbers never repeat across runs.
local run = tonumber(os.getenv("RUN") or "0")
function request()
  counter = counter + 1
  local lane = run * 2 + tid
  local n = string.format("%08d", counter)
  local ip = string.format("10.%d.%d.%d", lane, math.floor(counter / 256) % 256, counter % 256)
  local body = '{"eventId":"e' .. lane .. '-' .. counter .. '",'
    .. '"requestType":"com.okta.user.telephony.mfa-verification",'
    .. '"data":{"context":{"request":{"ipAddress":"' .. ip .. '"}},'
    .. '"userProfile":{"userId":"00u' .. lane .. n .. '"},'
    .. '"messageProfile":{"msgTemplate":"Your code is 11111","phoneNumber":"98' .. lane .. string.sub(n, 2) .. '",'
    .. '"deliveryChannel":"SMS","otpCode":"11111","locale":"EN-US"}}}'
  return wrk.format("POST", "/hooks/okta/telephony", headers, body)
end
if os.getenv("CHECK") then
  successes, others = 0, 0
  function response(status, headers, body)
    if status == 200 and string.find(body, "SUCCESSFUL", 1, true) then
      successes = successes + 1
    else
      others = others + 1
      if others <= 3 then io.stderr:write(status .. " " .. body .. "\n") end
    end
  end
  function done(summary, latency, requests)
    local ok, bad = 0, 0
    for _, thread in ipairs(threads) do
      ok = ok + thread:get("successes")
      bad = bad + thread:get("others")
    end
    io.write(string.format("check: %d SUCCESSFUL, %d other answers\n", ok, bad))
  end
end
LUA

run() { # label url run
  RUN=$3 wrk -t2 -c64 -d"${duration}s" --latency -s "$workdir/okta.lua" "$2/hooks/okta/telephony" >"$workdir/$1.out"
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' "$workdir/$1.out")
  p50=$(awk '$1 == "50%" {print $2}' "$workdir/$1.out")
  p99=$(awk '$1 == "99%" {print $2}' "$workdir/$1.out")
  printf '%-8s %10s req/s   p50 %8s   p99 %8s\n' "$1" "$rps" "$p50" "$p99"
  echo "$rps" >"$workdir/$1.rps"
}

echo "== check: 2 s of hook requests, every answer must be SUCCESSFUL"
CHECK=1 RUN=0 wrk -t2 -c64 -d2s -s "$workdir/okta.lua" "$gateway/hooks/okta/telephony" | grep '^check:'
echo "== load: 64 connections, 2 wrk threads, ${duration}s each ($(nproc) CPUs, $(uname -m))"
run bare "$bare" 1
run gateway "$gateway" 2
run bare2 "$bare" 3
awk -v g="$(cat "$workdir/gateway.rps")" -v a="$(cat "$workdir/bare.rps")" -v b="$(cat "$workdir/bare2.rps")" \
  'BEGIN { printf "gateway / bare throughput: %.2f (bare runs before and after: %.0f, %.0f req/s)\n", g / ((a + b) / 2), a, b }'
