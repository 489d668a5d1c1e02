"""schemathesis against the API's own OpenAPI schema, called in this process: no 5xx, and every answer matches the
schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from batchpress.api.app import create_app
from batchpress.context import Context
from tests.support.inprocess import service_context

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_api_never_fails_and_matches_its_schema(context: Context) -> None:
    with service_context(
        context.settings.data_dir,
        context.settings.database_url,
        migrate=False,
        processing_callback_secret="whsec_" + "A" * 43 + "=",
    ) as fuzzed:
        schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzzed))
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 5
        calls: dict[str, int] = {}
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=CHECKS)
                calls[case.operation.label] = calls.get(case.operation.label, 0) + 1

            try:
                run()
            except Exception as exc:
                pytest.fail(f"{operation.label}: {exc}")
    print(f"\nschemathesis: {sum(calls.values())} calls over {len(calls)} operations, 0 failures: {calls}")
