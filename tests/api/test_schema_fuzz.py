"""schemathesis against the live service's own OpenAPI schema: no 5xx, and every answer matches the schema."""

from __future__ import annotations

from pathlib import Path

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

from tests.conftest import fresh_database
from tests.support.servers import Service

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_api_never_fails_and_matches_its_schema(tmp_path: Path) -> None:
    with fresh_database() as url:
        env = {"BATCHPRESS_DATABASE_URL": url} if url else {}
        env["BATCHPRESS_PROCESSING_CALLBACK_SECRET"] = "whsec_" + "A" * 43 + "="
        service = Service(tmp_path / "data", env, ("--no-worker",)).start()
        try:
            schema = schemathesis.openapi.from_url(f"{service.base_url}/openapi.json")
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
        finally:
            service.stop()
