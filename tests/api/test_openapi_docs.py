"""The OpenAPI documentation: /docs renders, and every route shows an example of its answer."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient


def resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    resolved: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def has_example(response: dict[str, Any], spec: dict[str, Any]) -> bool:
    for media in response.get("content", {}).values():
        if "example" in media or "examples" in media:
            return True
        if "examples" in resolve(media.get("schema", {}), spec):
            return True
    return False


def test_every_route_documents_an_example_answer(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            success = [r for code, r in operation["responses"].items() if code.startswith("2") and code != "204"]
            no_content = "204" in operation["responses"] and "content" not in operation["responses"]["204"]
            if not no_content and (not success or not any(has_example(r, spec) for r in success)):
                missing.append(f"{method.upper()} {path}")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and not ("examples" in body or "example" in body):
                missing.append(f"{method.upper()} {path} (request body)")
    assert missing == []
    docs = api.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
