"""Schemathesis hooks for the gateway's contract fuzz (scripts/api-fuzz.sh): each request
carries the key that holds its operation's scope, read from the document's own `security`
requirement, so every operation is exercised past authentication. The keys come from
API_FUZZ_KEYS (`scope=token` pairs, comma-separated)."""

import os

import schemathesis

KEYS = dict(
    pair.split("=", 1) for pair in os.environ["API_FUZZ_KEYS"].split(",") if pair
)


@schemathesis.hook
def before_call(context, case, kwargs):
    requirements = case.operation.definition.raw.get("security", [])
    scopes = [scope for requirement in requirements for scope in requirement.get("api_key", [])]
    if not scopes:
        return
    if case.headers is None:
        case.headers = {}
    # A case that tests a missing or broken credential keeps it.
    if "Authorization" not in case.headers:
        case.headers["Authorization"] = "Bearer " + KEYS[scopes[0]]
