"""The Postman collection in docs/ is generated from the OpenAPI schema by scripts/postman.py, and kept in step with
it: a route added, removed or changed without regenerating the collection fails here."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.support.servers import REPO

COLLECTION = REPO / "docs" / "batchpress.postman_collection.json"
REGENERATE = "run `.venv/bin/python scripts/postman.py` (or `make postman`) and commit the result"


def load_script() -> ModuleType:
    """scripts/ is not a package: the generator is loaded from its file, as `python scripts/postman.py` runs it."""
    spec = importlib.util.spec_from_file_location("postman_script", REPO / "scripts" / "postman.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


postman = load_script()


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    schema: dict[str, Any] = postman.openapi_schema()
    return schema


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    collection: dict[str, Any] = json.loads(COLLECTION.read_text(encoding="utf-8"))
    return collection


def requests_in(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        if "request" in item:
            yield item
        yield from requests_in(item.get("item", []))


def operations(openapi: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, path_item in openapi["paths"].items()
        for method, operation in path_item.items()
        if method in postman.HTTP_METHODS
    }


def test_the_committed_collection_is_up_to_date(openapi: dict[str, Any]) -> None:
    expected = postman.render(postman.build(openapi))
    assert COLLECTION.read_text(encoding="utf-8") == expected, f"{COLLECTION.name} is out of date: {REGENERATE}"


def test_the_script_reads_the_schema_the_service_serves(openapi: dict[str, Any], api: TestClient) -> None:
    assert api.get("/openapi.json").json() == openapi


def test_every_operation_is_a_request_in_its_tags_folder(openapi: dict[str, Any], committed: dict[str, Any]) -> None:
    listed = {}
    for folder in committed["item"]:
        for item in requests_in([folder]):
            request = item["request"]
            path = "/" + "/".join(re.sub(r"^:(.+)$", r"{\1}", segment) for segment in request["url"]["path"])
            listed[(request["method"], path)] = (folder["name"], request)
    expected = operations(openapi)
    assert sorted(listed) == sorted(expected), REGENERATE
    for key, operation in expected.items():
        folder, request = listed[key]
        assert folder == operation["tags"][0]
        # Secured operations send the collection's bearer key; the others (health, the signed callback) none.
        assert ("auth" not in request) == bool(operation.get("security")), key


def test_the_upload_is_a_form_with_a_file_and_its_options(committed: dict[str, Any]) -> None:
    upload = next(
        i["request"] for i in requests_in(committed["item"]) if i["request"]["url"]["path"] == ["api", "upload", ""]
    )
    fields = {field["key"]: field for field in upload["body"]["formdata"]}
    assert upload["body"]["mode"] == "formdata"
    assert fields["file"]["type"] == "file"
    assert not fields["file"]["disabled"]
    assert {"webhook_url", "quality", "output_format", "max_dimension", "effort"} <= set(fields)


def test_base_url_and_api_key_are_collection_variables(committed: dict[str, Any]) -> None:
    variables = {variable["key"]: variable["value"] for variable in committed["variable"]}
    assert variables["baseUrl"] == "http://127.0.0.1:8000"
    assert variables["apiKey"] == ""
    assert committed["auth"] == {
        "type": "bearer",
        "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}],
    }
    assert committed["info"]["schema"] == "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    for item in requests_in(committed["item"]):
        assert item["request"]["url"]["raw"].startswith("{{baseUrl}}/")
    # Every {{variable}} the requests read is defined, so a fresh import sends no literal braces.
    used = set(re.findall(r"\{\{(\w+)\}\}", COLLECTION.read_text(encoding="utf-8")))
    assert used <= set(variables)
