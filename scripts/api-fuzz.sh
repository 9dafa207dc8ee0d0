#!/usr/bin/env bash
# The published contract, checked by independent tools: openapi-spec-validator validates
# gateway/openapi.json, then Schemathesis reads it and fuzzes a running gateway (stub
# provider, SQLite database, a key per scope, send limits off so the logic behind them is
# reached) with a fixed seed and a bounded run: every check but positive_data_acceptance
# (a number or code can match the schema and still be refused as a number, which a JSON
# schema cannot say), so no 5xx, every status, media type, header and body as documented,
# invalid and missing credentials refused, invalid bodies refused.
#
# Usage: GATEWAY_BIN=target/debug/phone-otp-gateway scripts/api-fuzz.sh
# Needs python3 with venv; installs both tools from PyPI into a temporary venv.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${GATEWAY_BIN:?set GATEWAY_BIN to the phone-otp-gateway binary}
work=$(mktemp -d)
gateway_pid=""
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "== contract: installing openapi-spec-validator and schemathesis"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check \
  'schemathesis>=4.3,<5' 'openapi-spec-validator>=0.7,<1'
"$work/venv/bin/openapi-spec-validator" gateway/openapi.json

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/gateway.toml" <<EOF
listen = "127.0.0.1:$port"
log_format = "json"
default_region = "JP"
[server]
auth_failures_per_minute = 1000000
[limits]
resend_cooldown = "off"
per_destination = "off"
per_subject = "off"
per_client_ip = "off"
per_client_network = "off"
per_tenant = "off"
per_country = "off"
global = "off"
[database]
url = "sqlite://$work/gateway.db?mode=rwc"
[[providers]]
kind = "stub"
[totp]
issuer = "Contract"
keys_env = "CONTRACT_TOTP_KEYS"
EOF

# One key per scope; each operation is called with the key of the scope its own
# `security` names (the operations below, by operation id).
declare -A scope_of=(
  [messages_send]=messages:send [challenges_start]=challenges:start
  [challenges_resend]=challenges:start [challenges_verify]=challenges:verify
  [totp_enroll]=totp:enroll [totp_confirm]=totp:enroll [totp_disable]=totp:enroll
  [totp_verify]=totp:verify [usage_read]=usage:read
)
declare -A key_of=()
for scope in $(printf '%s\n' "${scope_of[@]}" | sort -u); do
  key_of[$scope]=$("$bin" --config "$work/gateway.toml" keys create --owner contract --scope "$scope" \
    | awk '/^token/ {print $NF}')
done
: >"$work/schemathesis.toml"
for operation in "${!scope_of[@]}"; do
  variable="CONTRACT_KEY_${operation^^}"
  export "$variable=${key_of[${scope_of[$operation]}]}"
  printf '[[operations]]\ninclude-operation-id = "%s"\nheaders = { Authorization = "Bearer ${%s}" }\n\n' \
    "$operation" "$variable" >>"$work/schemathesis.toml"
done
operations=$(python3 -c 'import json,sys; d=json.load(open("gateway/openapi.json")); print(sum(len(v) for v in d["paths"].values()))')
[ "$operations" -eq "${#scope_of[@]}" ] \
  || { echo "error: the document has $operations operations, this script keys ${#scope_of[@]}" >&2; exit 1; }

CONTRACT_TOTP_KEYS=$(head -c 32 /dev/urandom | base64) "$bin" --config "$work/gateway.toml" \
  >"$work/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
# The served document is the committed one.
curl -fs "http://127.0.0.1:$port/openapi.json" | cmp - gateway/openapi.json

echo "== contract: schemathesis against the gateway on port $port"
set +e
"$work/venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run gateway/openapi.json \
  --url "http://127.0.0.1:$port" --checks all --exclude-checks positive_data_acceptance \
  --phases examples,coverage,fuzzing --max-examples 60 --seed 20261207 --workers 2 \
  --max-time 120 --no-color >"$work/schemathesis.out" 2>&1
status=$?
set -e
sed -n '/^=* FAILURES/,$p' "$work/schemathesis.out" | head -200
grep -E 'generated|passed|failed' "$work/schemathesis.out" | tail -3
# What the gateway itself counted (every /v1 request, by outcome).
curl -fs "http://127.0.0.1:$port/metrics" | python3 -c '
import sys
total = {}
for line in sys.stdin:
    if line.startswith("phone_otp_gateway_requests_total{"):
        labels, value = line.rsplit(" ", 1)
        outcome = labels.split("outcome=\"", 1)[1].split("\"", 1)[0]
        total[outcome] = total.get(outcome, 0) + int(float(value))
print("== contract: the gateway counted %d requests; by outcome: %s" % (
    sum(total.values()), ", ".join("%s %d" % kv for kv in sorted(total.items(), key=lambda kv: -kv[1]))))
'
if [ "$status" -ne 0 ]; then
  echo "error: schemathesis found failures (above)" >&2
  tail -20 "$work/gateway.log" >&2
  exit 1
fi
