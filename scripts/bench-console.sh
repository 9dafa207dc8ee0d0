#!/usr/bin/env bash
# How fast the operator console renders over a big audit trail: fills a SQLite file with
# ROWS audit records (default 1,000,000) and times every page over loopback HTTP, RUNS
# times each (default 15), beside GET /healthz on the same server in the same run.
# See gateway/examples/console_bench.rs.
#
# usage: ./scripts/bench-console.sh [ROWS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
export ROWS=${1:-1000000} RUNS=${2:-15}
echo "== $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
cargo build --quiet --release -p phone-otp-gateway --example console_bench
./target/release/examples/console_bench
