"""Validates a JSON document against a schema of Okta's OpenAPI excerpt.

usage: validate_okta.py SCHEMA_YAML SCHEMA_NAME JSON
exit 0 valid, 1 invalid (reason on stderr), 3 a module is missing.
"""
import json
import sys

try:
    import jsonschema
    import yaml
except ImportError as missing:  # pragma: no cover
    print(missing, file=sys.stderr)
    sys.exit(3)

spec_path, name, document = sys.argv[1], sys.argv[2], sys.argv[3]
with open(spec_path, encoding="utf-8") as f:
    spec = yaml.safe_load(f)
schemas = spec["components"]["schemas"]
# OpenAPI 3.0 refs point into components; make the schema self-contained.
schema = {"$ref": "#/definitions/" + name, "definitions": schemas}
text = json.dumps(schema).replace("#/components/schemas/", "#/definitions/")
schema = json.loads(text)
instance = json.loads(document)
validator = jsonschema.Draft7Validator(schema)
# Strict on the enum and the types; Okta's schemas allow extra properties.
errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
if errors:
    for error in errors:
        print("/".join(map(str, error.path)) + ": " + error.message, file=sys.stderr)
    sys.exit(1)
sys.exit(0)
