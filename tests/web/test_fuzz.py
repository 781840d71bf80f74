"""Property-based fuzzing of the HTTP API from its own OpenAPI document
(schemathesis): generated requests to every operation, checked for no 5xx and
for responses that match the document (status codes, content types, bodies).

A bounded number of cases per operation runs in the suite; `make fuzz` runs the
same test with FUZZ_EXAMPLES=250 (over 1000 cases in all). The app is the real
one on the real Redis, with a queue no worker consumes. URL submissions go
through a resolver that resolves nothing, so a generated URL never makes a
connection (the SSRF tests cover fetching).
"""

import os
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from shared import __version__ as VERSION
from tests.conftest import make_settings, running_app
from web.openapi import build_openapi
from web.services import services

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


def resolve_nothing(host: str, port: int) -> list[str]:
    return []


@pytest.fixture(scope="module")
def fuzz_app(redis_url):
    app_settings = make_settings(redis_url, queue_name=f"fuzz-{uuid.uuid4().hex[:6]}",
                                 wait_max_seconds=0.2, url_fetch_allow_networks="")
    with running_app(app_settings) as app:
        services(app).intake.fetcher.resolver = resolve_nothing
        yield app


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)


def _operations() -> list[tuple[str, str, GenerationMode]]:
    """Every operation with documents-following (positive) cases, and those that
    have a query, header or body to break with negative cases too."""
    found = []
    for path, methods in build_openapi(VERSION)["paths"].items():
        for method, spec in methods.items():
            found.append((method.upper(), path, GenerationMode.POSITIVE))
            breakable = "requestBody" in spec or any(
                p["in"] in ("query", "header") for p in spec.get("parameters", []))
            if breakable:
                found.append((method.upper(), path, GenerationMode.NEGATIVE))
    return found


OPERATIONS = _operations()


# schemathesis's own pytest plugin does not run under this pytest (9.x), so each
# operation's strategy is driven by hypothesis directly.
@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS,
                         ids=[f"{m} {p} {mode.value}" for m, p, mode in OPERATIONS])
def test_api_conforms_to_its_openapi_document(api_schema, method, path, mode):
    """Positive cases follow the document; negative ones break it and must get a 4xx."""
    operation = api_schema[path][method]
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 25,
              suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        # Not `positive_data_acceptance`: an image body is `binary` in any schema, so
        # schema-valid bytes that are not an image are rightly refused with a 400.
        response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
        calls.append(response.status_code)

    check()
    print(f"{method} {path} ({mode.value}): {len(calls)} cases, statuses {sorted(set(calls))}")
