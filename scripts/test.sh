#!/usr/bin/env bash
# The whole test suite on a fresh machine. It installs redis-server and PostgreSQL from the
# distribution's packages if missing, starts one Redis server, a three-primary Redis Cluster
# and a PostgreSQL cluster on free loopback ports with persistence off, exports REDIS_URL,
# REDIS_CLUSTER_NODES and POSTGRES_URL, runs every test
# with all features across the workspace (the library and the gateway), and stops the
# servers it started.
set -euo pipefail
cd "$(dirname "$0")/.."

# Redis for the stores; Python's jsonschema and yaml validate the gateway's answers against
# Okta's published schema and prometheus_client parses its /metrics; Node runs the shipped
# Auth0 Actions.
python_modules='import jsonschema, yaml, prometheus_client'
packages=()
command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 \
  || packages+=(redis-server redis-tools)
python3 -c "$python_modules" >/dev/null 2>&1 || /usr/bin/python3 -c "$python_modules" >/dev/null 2>&1 \
  || packages+=(python3 python3-jsonschema python3-yaml python3-prometheus-client)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
# The console's browser test: Debian's Chromium, driven by playwright-core from npm.
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || packages+=(chromium)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)  # RSA keys for the JWT tests
command -v curl >/dev/null 2>&1 || packages+=(curl)  # the contract fuzz (scripts/api-fuzz.sh)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)  # its tools' venv
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=(postgresql)
if [ ${#packages[@]} -gt 0 ] && ! command -v apt-get >/dev/null 2>&1; then
  # Not Debian or Ubuntu: say what to install instead of failing half-way.
  echo "error: missing ${packages[*]} (Debian package names), and no apt-get to install them." >&2
  echo "Install with your package manager: redis-server and redis-cli, PostgreSQL (initdb," >&2
  echo "pg_ctl under /usr/lib/postgresql/*/bin), Node.js, openssl, and Python 3 with the" >&2
  echo "jsonschema, PyYAML and prometheus_client modules; then run this script again." >&2
  exit 1
fi
if [ ${#packages[@]} -gt 0 ]; then
  echo "== installing ${packages[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi
# The interpreter that has the modules (a pyenv python3 may shadow the system one).
if python3 -c "$python_modules" >/dev/null 2>&1; then PYTHON=python3; else PYTHON=/usr/bin/python3; fi
export PYTHON

workdir=$(mktemp -d)
pgdir=""
# Stops the servers and removes their files. It keeps the run's exit status: a leftover
# temporary directory is reported, never turned into a failed run.
cleanup() {
  local status=$? pids=() pid alive
  set +e
  for pidfile in "$workdir"/*.pid; do
    [ -f "$pidfile" ] && pids+=("$(cat "$pidfile")")
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  # A Redis server writes its log and cluster config as it stops: wait until each has exited
  # before removing its directory, or the removal races those writes.
  for _ in $(seq 1 200); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.05
  done
  if [ -n "${smallfs:-}" ]; then
    umount "$smallfs" && rmdir "$smallfs" || echo "warning: could not unmount $smallfs" >&2
  fi
  rm -rf "$workdir" || echo "warning: could not remove $workdir" >&2
  if [ -n "$pgdir" ]; then
    $as_postgres "$pg_bin/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$pgdir" || echo "warning: could not remove $pgdir" >&2
  fi
  exit "$status"
}
trap cleanup EXIT

# A free loopback port whose cluster bus port (+10000) is free too.
free_port() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    port = random.randint(20000, 45000)
    try:
        for p in (port, port + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", p)); s.close()
    except OSError:
        continue
    print(port); break
PY
}

wait_for() { # port
  for _ in $(seq 1 100); do
    if [ "$(redis-cli -p "$1" ping 2>/dev/null)" = "PONG" ]; then return 0; fi
    sleep 0.05
  done
  echo "redis-server on port $1 did not start"; cat "$workdir"/*.log; exit 1
}

start_server() { # port, extra args...
  local port=$1; shift
  mkdir -p "$workdir/$port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$workdir/$port.pid" --logfile "$workdir/$port.log" \
    --dir "$workdir/$port" "$@"
  wait_for "$port"
}

port=$(free_port)
start_server "$port"
export REDIS_URL="redis://127.0.0.1:$port/0"
echo "== Redis on $REDIS_URL"

nodes=()
for _ in 1 2 3; do
  node=$(free_port)
  start_server "$node" --cluster-enabled yes --cluster-config-file "nodes-$node.conf" \
    --cluster-node-timeout 5000
  nodes+=("127.0.0.1:$node")
done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$workdir/cluster-create.log" 2>&1 \
  || { cat "$workdir/cluster-create.log"; exit 1; }
first=${nodes[0]##*:}
for _ in $(seq 1 200); do
  if redis-cli -p "$first" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then break; fi
  sleep 0.05
done
redis-cli -p "$first" cluster info | grep -q 'cluster_state:ok' || { echo "Redis Cluster did not form"; exit 1; }
REDIS_CLUSTER_NODES=$(printf 'redis://%s,' "${nodes[@]}")
export REDIS_CLUSTER_NODES=${REDIS_CLUSTER_NODES%,}
echo "== Redis Cluster on $REDIS_CLUSTER_NODES"

# PostgreSQL for the gateway's database tests: a throwaway cluster on a free loopback
# port, trust auth, fsync off. PostgreSQL refuses to run as root, so under root it runs as
# the `postgres` user the package creates.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_postgres=""
pgdir=$(mktemp -d /tmp/potp-pg.XXXXXX)
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$pgdir"
  as_postgres="runuser -u postgres --"
fi
$as_postgres "$pg_bin/initdb" -D "$pgdir/data" -A trust -U postgres >"$workdir/initdb.log" 2>&1 \
  || { cat "$workdir/initdb.log"; exit 1; }
pgport=$(free_port)
$as_postgres "$pg_bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
  -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
  || { cat "$pgdir/log"; exit 1; }
export POSTGRES_URL="postgres://postgres@127.0.0.1:$pgport/postgres"
echo "== PostgreSQL on $POSTGRES_URL"

# A 4 MiB filesystem of its own for the full-disk test of the audit trail (SQLite). Only
# root can mount one; elsewhere the test is skipped, and says why.
smallfs=""
if [ "$(id -u)" -eq 0 ] && smallfs=$(mktemp -d /tmp/potp-smallfs.XXXXXX) \
   && mount -t tmpfs -o size=4m tmpfs "$smallfs" 2>"$workdir/mount.log"; then
  export SMALL_FS_DIR="$smallfs"
  echo "== a 4 MiB tmpfs for the full-disk test on $SMALL_FS_DIR"
else
  [ -n "$smallfs" ] && rmdir "$smallfs" 2>/dev/null
  smallfs=""
  export SMALL_FS_UNAVAILABLE="cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): $(cat "$workdir/mount.log" 2>/dev/null)"
  echo "warning: $SMALL_FS_UNAVAILABLE; the full-disk test is skipped" >&2
fi

# playwright-core and axe-core for the console's browser test, as the lockfile pins them.
if [ ! -d gateway/tests/browser/node_modules/playwright-core ]; then
  echo "== installing the browser test's npm packages"
  npm ci --prefix gateway/tests/browser --no-audit --no-fund --loglevel=error
fi
cargo test --workspace --all-features

# The alerting rules' unit tests and the dashboard's queries, with promtool.
./scripts/check-dashboards.sh

# The fault suite: two gateway instances under load while Redis restarts, this PostgreSQL
# stops and starts, the provider flaps, and the instances get SIGTERM and SIGKILL; it
# checks that no message went out without its audit row (scripts/faults.py).
echo "== fault suite"
cargo build --quiet -p phone-otp-gateway --all-features
pg_options="-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
GATEWAY_BIN="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/phone-otp-gateway" \
PG_STOP="$as_postgres $pg_bin/pg_ctl -D $pgdir/data -m fast -w stop" \
PG_START="$as_postgres $pg_bin/pg_ctl -D $pgdir/data -l $pgdir/log -w -o '$pg_options' start" \
  "$PYTHON" scripts/faults.py

# The published contract: validated, and fuzzed against a running gateway by Schemathesis.
GATEWAY_BIN="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/phone-otp-gateway" ./scripts/api-fuzz.sh

# The examples' command lines: clear errors and exit codes, no silent fallback.
./scripts/check-examples.sh
