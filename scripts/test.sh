#!/usr/bin/env bash
# The whole test suite on a fresh machine. It installs redis-server from the distribution's
# packages if missing, starts it on a free loopback port with persistence off, exports
# REDIS_URL, runs every test with all features, and stops the server it started.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
workdir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$workdir/redis.pid" --logfile "$workdir/redis.log" --dir "$workdir"
cleanup() {
  if [ -f "$workdir/redis.pid" ]; then kill "$(cat "$workdir/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$workdir"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = "PONG" ]; then break; fi
  sleep 0.05
done
[ "$(redis-cli -p "$port" ping)" = "PONG" ] || { echo "redis-server did not start"; cat "$workdir/redis.log"; exit 1; }

export REDIS_URL="redis://127.0.0.1:$port/0"
echo "== Redis on $REDIS_URL"
cargo test --all-features
