#!/usr/bin/env bash
# How fast the operator console renders over a big audit trail: fills a SQLite file with
# ROWS audit records (default 1,000,000) and times every page over loopback HTTP, RUNS
# times each (default 15), beside GET /healthz on the same server in the same run.
# See gateway/examples/console_bench.rs.
#
# usage: [AT_TIMES='00:59 23:59'] ./scripts/bench-console.sh [ROWS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
export ROWS=${1:-1000000} RUNS=${2:-15}
echo "== $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
cargo build --quiet --release -p phone-otp-gateway --example console_bench
# Twice by default: at 00:59 UTC yesterday is not summed yet (it settles at 01:00), so
# the pages sum nearly two days of records live (the worst case); at 23:59 today's.
for at in ${AT_TIMES:-00:59 23:59}; do
  AT=$at ./target/release/examples/console_bench
done
