#!/usr/bin/env bash
# Runs every cargo-fuzz target for a given time each (default 30 s): `./scripts/fuzz.sh 600`
# for the ten-minute runs the README reports, `./scripts/fuzz.sh 30 phone_parse` for one.
# Needs the nightly toolchain; installs cargo-fuzz if it is missing. Each target starts from
# its committed seeds (fuzz/seeds/<target>, taken from the test fixtures) plus whatever
# earlier local runs found (fuzz/corpus/<target>, not committed). Any crash fails the run and
# leaves its input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(phone_parse code_input challenge_id twilio_response ntt_cpaas_response
    smslink_response twilio_signature template_render)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzzing needs the nightly toolchain (rustup toolchain install nightly)"; exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

cargo +nightly fuzz build --fuzz-dir fuzz
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  echo "== fuzzing $target for ${seconds}s"
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=60 -print_final_stats=1 2>&1 | grep -E 'stat::number_of_executed_units|stat::new_units_added|ERROR: libFuzzer|panicked|SUMMARY|^Done' || true
  # A slow unit is a report, not a failure: the first input pays for the phone metadata's
  # lazy set-up under the sanitizer, which took over libFuzzer's 10 s once on a loaded
  # machine. An input that hangs is a `timeout-` artifact (over 60 s) and fails the run.
  for slow in "fuzz/artifacts/$target"/slow-unit-*; do
    [ -e "$slow" ] || continue
    echo "note: $target: a slow input (reported, not a failure): $(head -c 80 "$slow" | od -An -c | tr -s ' ' | head -2)"
    rm -f "$slow"
  done
  if [ -n "$(ls -A "fuzz/artifacts/$target" 2>/dev/null)" ]; then
    echo "fuzz target $target found a failing input:"; ls "fuzz/artifacts/$target"; exit 1
  fi
done
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, nothing found"
