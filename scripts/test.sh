#!/usr/bin/env bash
# The whole test suite, on a fresh machine: everything the tests need is started here.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --all-features
