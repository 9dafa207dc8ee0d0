#!/usr/bin/env bash
# Starts a loopback Redis, then measures on it:
# 1. redis-benchmark: EVALSHA of the crate's check script (the same Lua that verify runs) on
#    a challenge hash, 64 connections;
# 2. cargo bench --bench redis: verify through RedisStore at 1 and 64 concurrent tasks.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
workdir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$workdir/redis.pid" --logfile "$workdir/redis.log" --dir "$workdir"
# SHUTDOWN returns once the server has stopped writing its log, so the removal cannot race it.
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1; rm -rf "$workdir" || true' EXIT
until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = "PONG" ]; do sleep 0.05; done

# The check script exactly as src/store/redis.rs builds it (STATE then CHECK).
script=$(python3 - <<'PY'
import re
source = open("src/store/redis.rs").read()
def const(name):
    return re.search(r'const ' + name + r': &str = r#"(.*?)"#;', source, re.S).group(1)
print(const("STATE") + const("CHECK"), end="")
PY
)
sha=$(redis-cli -p "$port" script load "$script")
key='bench:c:{00000000000000000000000000000000}'
digest=$(python3 -c 'print("\x01" + "a" * 32, end="")')
redis-cli -p "$port" hset "$key" st p exp 99999999999999 att 1000000000 p 2 ch 1 lo 1 dst +819012345678 d0 "$digest" >/dev/null
echo "== redis-benchmark: EVALSHA check script, wrong digest, 64 connections"
redis-benchmark -p "$port" -c 64 -n 400000 -q EVALSHA "$sha" 1 "$key" 1 "xwrong-digest-of-33-bytes-xxxxxxxx"

echo "== cargo bench --bench redis"
REDIS_URL="redis://127.0.0.1:$port/0" cargo bench --features redis --bench redis
