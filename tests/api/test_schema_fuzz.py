"""schemathesis against the API's own OpenAPI schema, called in this process: no 5xx, and every answer matches the
schema. Half the cases that name a request name one that exists, so its reads reach the database; the seed is
printed, and ``BATCHPRESS_FUZZ_SEED=<seed>`` replays a run."""

from __future__ import annotations

import os
import random
import zlib
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from batchpress.api.app import create_app
from batchpress.context import Context
from tests.support.inprocess import api_client, service_context

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
        fuzz_seed = int(os.environ.get("BATCHPRESS_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
        print(f"\nschemathesis seed {fuzz_seed} (BATCHPRESS_FUZZ_SEED={fuzz_seed} replays it)")
        with api_client(fuzzed) as api:
            csv = b"S. No.,Product Name,Input Image Urls\n1,Shoe,https://a.example/b.jpg\n"
            existing = api.post("/api/upload/", files={"file": ("p.csv", csv)}).json()["request_id"]
        schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzzed))
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 5
        calls: dict[str, int] = {}
        # Valid inputs must get documented answers; invalid ones (negative mode) at least never a 5xx.
        for mode, checks, examples in (
            (GenerationMode.POSITIVE, CHECKS, 200),
            (GenerationMode.NEGATIVE, [not_a_server_error], 100),
        ):
            for operation in operations:
                fuzz(operation, mode, checks, examples, fuzz_seed, existing, calls)
    print(f"\nschemathesis: {sum(calls.values())} calls over {len(calls)} operations, 0 failures: {calls}")


def fuzz(
    operation: Any,
    mode: GenerationMode,
    checks: list[Any],
    examples: int,
    fuzz_seed: int,
    existing: str,
    calls: dict[str, int],
) -> None:
    """``examples`` cases of ``operation`` in ``mode``; half of those that name a request name ``existing``."""

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @seed(fuzz_seed)
    def run(case: schemathesis.Case) -> None:
        if "request_id" in (case.path_parameters or {}) and zlib.crc32(repr(case.query).encode()) % 2:
            case.path_parameters["request_id"] = existing
        case.call_and_validate(checks=checks)
        label = f"{case.operation.label} ({mode.value})"
        calls[label] = calls.get(label, 0) + 1

    try:
        run()
    except Unsatisfiable:
        if mode is not GenerationMode.NEGATIVE:  # an operation without parameters has no invalid input
            raise
    except Exception as exc:
        pytest.fail(f"{operation.label}, {mode.value} (seed {fuzz_seed}): {exc}")
