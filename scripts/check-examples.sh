#!/usr/bin/env bash
# The examples refuse bad command lines and misconfiguration in words a user can act on,
# with a non-zero exit, and never fall back to the stub silently. Offline: every case
# fails before anything is sent.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --example quickstart
bin=target/debug/examples/quickstart
failures=0

# expect CODE TEXT ARGS...: runs the quick start with no provider variables set.
expect() {
  local code=$1 text=$2
  shift 2
  local out status=0
  out=$(env -u TWILIO_ACCOUNT_SID -u TWILIO_AUTH_TOKEN -u TWILIO_API_KEY_SID \
    -u TWILIO_FROM -u TWILIO_MESSAGING_SERVICE_SID "$@" 2>&1 </dev/null) || status=$?
  if [ "$status" -ne "$code" ] || [[ "$out" != *"$text"* ]] || [[ "$out" == *"Error: "* ]]; then
    echo "FAIL: $* exited $status (expected $code) with:"
    echo "$out" | sed 's/^/    /'
    echo "    expected to contain: $text"
    failures=$((failures + 1))
  else
    echo "ok: ${*:1:6} -> $code"
  fi
}

expect 0 "-> Verified" "$bin"
expect 2 "--provider" "$bin" --to +819012345678
expect 2 "a value is required for '--provider" "$bin" --provider
expect 2 "--to" "$bin" --provider twilio
expect 2 "invalid value 'vonage'" "$bin" --provider vonage --to +819012345678
expect 1 "environment variables not set: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID" \
  "$bin" --provider twilio --to +819012345678
expect 1 "environment variables not set: NTT_CPAAS_BASE_URL, NTT_CPAAS_API_KEY, NTT_CPAAS_SENDER" \
  env -u NTT_CPAAS_BASE_URL -u NTT_CPAAS_API_KEY -u NTT_CPAAS_SENDER "$bin" --provider ntt-cpaas --to +819012345678
expect 1 "--to \"not-a-number\": phone number contains a character" \
  env SMSLINK_API_TOKEN=placeholder "$bin" --provider smslink --to not-a-number
expect 1 "not in international (+) format" \
  env SMSLINK_API_TOKEN=placeholder "$bin" --provider smslink --to 09012345678

# multi_instance: Redis down names the URL; a second run inside the resend cooldown says
# why in words (limits live in Redis). Needs the test script's Redis (REDIS_URL).
cargo build --quiet --features redis --example multi_instance
multi=target/debug/examples/multi_instance
expect 1 "cannot reach Redis at redis://127.0.0.1:1/0" env REDIS_URL=redis://127.0.0.1:1/0 "$multi"
if [ -n "${REDIS_URL:-}" ]; then
  # A clean slate: an earlier run's cooldown would fail the first run here.
  redis-cli -u "$REDIS_URL" --scan --pattern 'demo:*' | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
  expect 0 "instance B: verify -> Verified" "$multi"
  expect 1 "less than 30 s ago (an earlier run" "$multi"
else
  echo "*** multi_instance against Redis SKIPPED: REDIS_URL is not set (./scripts/test.sh sets it) ***"
fi

# The README's "try it in five minutes": its block exactly as written, run with bash. It
# starts the gateway (offline config) in the background and posts Okta's request; the
# answer must be SUCCESSFUL. The gateway it started is stopped afterwards.
try_block=$(awk '/<!-- check-examples: try the gateway -->/ {found=1; next}
  found && /^```sh/ {inside=1; next} inside && /^```/ {exit} inside {print}' README.md)
[ -n "$try_block" ] || { echo "FAIL: the README's try-the-gateway block is missing"; failures=$((failures + 1)); }
try_out=$(bash -c "set -m; $try_block
status=\$?; kill %1 2>/dev/null; wait 2>/dev/null; exit \$status" 2>&1 </dev/null) || true
if [[ "$try_out" == *'"status":"SUCCESSFUL"'* ]]; then
  echo "ok: the README's try-the-gateway commands -> SUCCESSFUL"
else
  echo "FAIL: the README's try-the-gateway commands answered:"
  echo "$try_out" | sed 's/^/    /' | tail -20
  failures=$((failures + 1))
fi

# The README's "try the console": its block as written, then the sign-in a browser does
# (the form's token from its cookie, the key the block printed) and the overview.
console_block=$(awk '/<!-- check-examples: try the console -->/ {found=1; next}
  found && /^```sh/ {inside=1; next} inside && /^```/ {exit} inside {print}' README.md)
[ -n "$console_block" ] || { echo "FAIL: the README's try-the-console block is missing"; failures=$((failures + 1)); }
rm -f /tmp/phone-otp-console-try.db*
check_console=$(cat <<'CHECK'
log=$(mktemp)
{ eval "$CONSOLE_BLOCK"; } >"$log" 2>&1
key=$(sed -n 's/^token (shown once, store it now): //p' "$log")
base=http://127.0.0.1:8080
curl -s --retry 60 --retry-connrefused --retry-delay 2 -o /dev/null "$base/healthz"
csrf=$(curl -s -D - -o /dev/null "$base/console/signin" | tr -d '\r' \
  | sed -n 's/^set-cookie: potp_console_signin=\([^;]*\).*/\1/ip' | head -1)
session=$(curl -s -D - -o /dev/null "$base/console/signin" -H "cookie: potp_console_signin=$csrf" \
  -H 'sec-fetch-site: same-origin' --data-urlencode "key=$key" --data-urlencode "csrf=$csrf" \
  | tr -d '\r' | sed -n 's/^set-cookie: \(potp_console=[^;]*\).*/\1/ip' | head -1)
curl -s "$base/console/overview" -H "cookie: $session"
status=$?; kill %1 2>/dev/null; wait 2>/dev/null; rm -f "$log"; exit $status
CHECK
)
console_out=$(CONSOLE_BLOCK="$console_block" bash -c "set -m; $check_console" 2>&1 </dev/null) || true
if [[ "$console_out" == *'<h1>Overview</h1>'* ]] && [[ "$console_out" == *'<strong>platform-team</strong>'* ]]; then
  echo "ok: the README's try-the-console commands -> signed in, overview"
else
  echo "FAIL: the README's try-the-console commands answered:"
  echo "$console_out" | sed 's/^/    /' | tail -20
  failures=$((failures + 1))
fi
rm -f /tmp/phone-otp-console-try.db*

if [ "$failures" -gt 0 ]; then
  echo "$failures example check(s) failed"
  exit 1
fi
