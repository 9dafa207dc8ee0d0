"""Parses Prometheus text from stdin with prometheus_client's parser.

Prints every sample as JSON [name, labels, value]; exit 1 if it does not parse, 3 if the
module is missing.
"""
import json
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as missing:  # pragma: no cover
    print(missing, file=sys.stderr)
    sys.exit(3)

try:
    samples = [
        [s.name, s.labels, s.value]
        for family in text_string_to_metric_families(sys.stdin.read())
        for s in family.samples
    ]
except Exception as error:  # the parser raises ValueError and friends
    print(error, file=sys.stderr)
    sys.exit(1)
print(json.dumps(samples))
