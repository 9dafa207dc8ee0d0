#!/usr/bin/env bash
# The Prometheus alerting rules and the Grafana dashboard in gateway/dashboards/, checked
# with promtool (Debian's `prometheus` package): the rules parse and pass their unit tests
# (alerts.test.yml), and every dashboard query parses as PromQL (each is checked as a
# recording rule, Grafana's $__rate_interval and $instance replaced). Which series they
# name is checked against a live /metrics by the gateway test `dashboards`.
set -euo pipefail
cd "$(dirname "$0")/../gateway/dashboards"
if ! command -v promtool >/dev/null 2>&1; then
  echo "== installing promtool (prometheus)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
echo "== alert rules (promtool)"
promtool check rules alerts.yml
promtool test rules alerts.test.yml
echo "== dashboard queries (promtool)"
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
"${PYTHON:-python3}" - phone-otp.json "$workdir/dashboard-rules.yml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
exprs = []
def walk(node):
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            exprs.append(node["expr"])
        for value in node.values():
            walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)
walk(dashboard)
if len(exprs) < 10:
    sys.exit(f"only {len(exprs)} queries in the dashboard")
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, expr in enumerate(exprs):
        expr = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
        out.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(expr)}\n")
print(f"{len(exprs)} dashboard queries")
PY
promtool check rules "$workdir/dashboard-rules.yml"
