#!/usr/bin/env bash
# Governance cost: an authenticated, audited, priced send through the gateway (API key
# checked in the database, audit record written before the provider is called and
# completed after) against the same send with a static token and no database, in one run.
#
# gateway/examples/governance_bench_server.rs (release) serves POST /v1/messages three
# ways: OPEN (static token, no database), SQLITE (a file in WAL mode) and POSTGRES (a
# throwaway local cluster this script starts, fsync on). wrk (Debian package) drives each
# with 64 connections for DURATION seconds, every request to a fresh number; OPEN runs
# before and after each audited run, and each ratio is against the mean of its neighbours.
#
# usage: ./scripts/bench-governance.sh [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
packages=()
command -v wrk >/dev/null 2>&1 || packages+=(wrk)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=(postgresql)
if [ ${#packages[@]} -gt 0 ]; then
  echo "== installing ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi

workdir=$(mktemp -d)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_postgres=""
pgdir=$(mktemp -d /tmp/potp-pgbench.XXXXXX)
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$pgdir"
  as_postgres="runuser -u postgres --"
fi
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  $as_postgres "$pg_bin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$workdir" "$pgdir"
}
trap cleanup EXIT

pgport=$((20000 + RANDOM % 20000))
$as_postgres "$pg_bin/initdb" -D "$pgdir/data" -A trust -U postgres >"$workdir/initdb.log" 2>&1 \
  || { cat "$workdir/initdb.log"; exit 1; }
$as_postgres "$pg_bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
  -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null \
  || { cat "$pgdir/log"; exit 1; }

cargo build --quiet --release -p phone-otp-gateway --example governance_bench_server
POSTGRES_URL="postgres://postgres@127.0.0.1:$pgport/postgres" \
  ./target/release/examples/governance_bench_server >"$workdir/urls" &
server=$!
for _ in $(seq 1 200); do
  grep -q '^READY=' "$workdir/urls" 2>/dev/null && break
  sleep 0.05
done
value() { sed -n "s/^$1=//p" "$workdir/urls"; }

cat >"$workdir/send.lua" <<'LUA'
-- One POST /v1/messages per call, each to a fresh Japanese mobile number.
local counter = 0
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
}
local run = tonumber(os.getenv("RUN") or "0")
function request()
  counter = counter + 1
  local lane = 10 + run * 2 + tid  -- 10..29: 090-1x.. to 090-2x.. are mobile ranges
  local body = '{"to":"+8190' .. string.format("%02d%06d", lane, counter % 1000000) .. '","code":"482913"}'
  return wrk.format("POST", "/v1/messages", headers, body)
end
if os.getenv("CHECK") then
  ok, other = 0, 0
  function response(status, headers, body)
    if status == 200 then ok = ok + 1 else
      other = other + 1
      if other <= 3 then io.stderr:write(status .. " " .. body .. "\n") end
    end
  end
end
LUA

run=0
measure() { # label name
  run=$((run + 1))
  RUN=$run TOKEN=$(value "$2_TOKEN") wrk -t2 -c64 -d"${duration}s" --latency -s "$workdir/send.lua" \
    "$(value "$2")/v1/messages" >"$workdir/$1.out"
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$workdir/$1.out")
  p50=$(awk '$1 == "50%" {print $2}' "$workdir/$1.out")
  p99=$(awk '$1 == "99%" {print $2}' "$workdir/$1.out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$workdir/$1.out")
  printf '%-9s %10s req/s   p50 %8s   p99 %8s\n' "$1" "$rps" "$p50" "$p99"
  if [ -n "$non2xx" ]; then echo "$1: $non2xx answers were not 2xx: the figures are void"; exit 1; fi
  echo "$rps" >"$workdir/$1.rps"
}
ratio() { # audited before after
  awk -v g="$(cat "$workdir/$1.rps")" -v a="$(cat "$workdir/$2.rps")" -v b="$(cat "$workdir/$3.rps")" \
    -v n="$1" 'BEGIN { printf "%s / open: %.2f\n", n, g / ((a + b) / 2) }'
}

echo "== check: every answer must be 200"
for name in OPEN SQLITE POSTGRES; do
  RUN=9 TOKEN=$(value "${name}_TOKEN") CHECK=1 wrk -t2 -c64 -d1s -s "$workdir/send.lua" \
    "$(value "$name")/v1/messages" | grep -E 'Non-2xx' && { echo "$name refused requests"; exit 1; }
done
echo "== load: 64 connections, 2 wrk threads, ${duration}s each ($(nproc) CPUs, $(uname -m))"
measure open1 OPEN
measure sqlite SQLITE
measure open2 OPEN
measure postgres POSTGRES
measure open3 OPEN
ratio sqlite open1 open2
ratio postgres open2 open3
