"""Write docs/batchpress.postman_collection.json, a Postman collection (v2.1) generated from the API's OpenAPI schema.

Run it after changing a route (``.venv/bin/python scripts/postman.py``, or ``make postman``): tests/test_postman.py
fails while the committed collection differs from what this writes. One folder per OpenAPI tag, one request per
operation; ``{{baseUrl}}`` and ``{{apiKey}}`` are collection variables, the key sent as a bearer token by every
operation the schema secures. The output is byte-for-byte the same for the same schema (keys sorted, schema order
kept), so the test can compare files.
"""

from __future__ import annotations

import http
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from batchpress.api.app import create_app
from batchpress.config import Settings
from batchpress.context import Context

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "docs" / "batchpress.postman_collection.json"
POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
JSON = "application/json"
MULTIPART = "multipart/form-data"

Json = dict[str, Any]


def openapi_schema() -> Json:
    """What the API serves at /openapi.json, from an app over a throwaway data directory: nothing is connected to,
    and the settings that could change the app are given, whatever the environment says."""
    with tempfile.TemporaryDirectory(prefix="batchpress-postman-") as data_dir:
        settings = Settings(data_dir=Path(data_dir), database_url="", broker_url="", storage="local", api_keys="")
        context = Context.build(settings)
        try:
            schema = create_app(context).openapi()
        finally:
            context.close()
    # As a client reads it: JSON types only.
    loaded: Json = json.loads(json.dumps(schema))
    return loaded


def build(openapi: Json) -> Json:
    """The collection for ``openapi``: folders in the order of the schema's tags (declared, else first used)."""
    folders: dict[str, list[Json]] = {tag["name"]: [] for tag in openapi.get("tags", [])}
    untagged: list[Json] = []
    names = path_parameter_names(openapi)
    for path, path_item in openapi.get("paths", {}).items():
        for method, operation in path_item.items():
            if method not in HTTP_METHODS:
                continue
            item = request_item(openapi, path, method, operation, path_item.get("parameters", []), names)
            tags = operation.get("tags") or []
            (folders.setdefault(tags[0], []) if tags else untagged).append(item)
    described = {tag["name"]: tag.get("description") for tag in openapi.get("tags", [])}
    items: list[Json] = []
    for name, requests in folders.items():
        if requests:
            items.append({"name": name, "item": requests} | _described(described.get(name)))
    info = openapi.get("info", {})
    generated = "Generated from the OpenAPI schema by scripts/postman.py; the service also serves it at /openapi.json."
    return {
        "info": {
            "name": info.get("title", "API"),
            "description": "\n\n".join(filter(None, [info.get("description"), generated])),
            "schema": POSTMAN_SCHEMA,
            "version": info.get("version", ""),
        },
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]},
        "variable": [
            {"key": "baseUrl", "value": DEFAULT_BASE_URL, "type": "string", "description": "where the API listens"},
            {
                "key": "apiKey",
                "value": "",
                "type": "string",
                "description": "one of BATCHPRESS_API_KEYS, sent as a bearer token (empty while the API is open)",
            },
            *(
                {"key": variable(name), "value": "", "type": "string", "description": f"the {name} path parameter"}
                for name in sorted(names)
            ),
        ],
        "item": [*items, *untagged],
    }


def request_item(
    openapi: Json, path: str, method: str, operation: Json, shared: list[Json], path_names: set[str]
) -> Json:
    parameters = [resolve(openapi, p) for p in [*shared, *operation.get("parameters", [])]]
    headers = [
        {"key": p["name"], "value": _default(p), "type": "text", "disabled": not p.get("required", False)}
        | _described(p.get("description"))
        for p in parameters
        if p.get("in") == "header"
    ]
    request: Json = {"method": method.upper(), "header": headers, "url": url(path, parameters)}
    request |= _described(operation.get("description") or operation.get("summary"))
    body = request_body(openapi, operation)
    if body is not None:
        if body["mode"] == "raw":
            request["header"] = [{"key": "Content-Type", "value": JSON, "type": "text"}, *headers]
        request["body"] = body
    if not operation.get("security", openapi.get("security")):
        request["auth"] = {"type": "noauth"}  # the collection's bearer key is for secured operations only
    item: Json = {
        "name": operation.get("summary") or operation.get("operationId") or f"{method.upper()} {path}",
        "request": request,
        "response": saved_responses(openapi, operation),
    }
    if script := keep_ids(openapi, operation, parameters, path_names):
        item["event"] = [{"listen": "test", "script": {"type": "text/javascript", "exec": script}}]
    return item


def url(path: str, parameters: list[Json]) -> Json:
    """``/api/status/{request_id}/`` as ``{{baseUrl}}/api/status/:request_id/``; query parameters listed, and
    enabled only when required, with their defaults as values."""
    segments = [re.sub(r"\{([^}/]+)\}", r":\1", segment) for segment in path.split("/")[1:]]
    query = [
        {"key": p["name"], "value": _default(p), "disabled": not p.get("required", False)}
        | _described(p.get("description"))
        for p in parameters
        if p.get("in") == "query"
    ]
    sent = "&".join(f"{q['key']}={q['value']}" for q in query if not q["disabled"])
    built: Json = {
        "raw": "{{baseUrl}}/" + "/".join(segments) + (f"?{sent}" if sent else ""),
        "host": ["{{baseUrl}}"],
        "path": segments,
    }
    if query:
        built["query"] = query
    variables = [
        {"key": p["name"], "value": f"{{{{{variable(p['name'])}}}}}"} | _described(p.get("description"))
        for p in parameters
        if p.get("in") == "path"
    ]
    if variables:
        built["variable"] = variables
    return built


def request_body(openapi: Json, operation: Json) -> Json | None:
    """JSON from the schema's first example; a multipart form with its file fields and its text fields (the
    optional ones disabled)."""
    content = resolve(openapi, operation.get("requestBody", {})).get("content", {})
    if JSON in content:
        example = first_example(openapi, content[JSON])
        raw = "" if example is None else json.dumps(example, indent=2, ensure_ascii=False)
        return {"mode": "raw", "raw": raw, "options": {"raw": {"language": "json"}}}
    form = content.get(MULTIPART) or content.get("application/x-www-form-urlencoded")
    if form is None:
        return None
    schema = resolve(openapi, form.get("schema", {}))
    required = set(schema.get("required", []))
    fields: list[Json] = []
    for name, field in schema.get("properties", {}).items():
        field = resolve(openapi, field)
        entry: Json = {"key": name, "disabled": name not in required} | _described(field.get("description"))
        if field.get("format") == "binary" or "contentMediaType" in field:
            entry |= {"type": "file", "src": []}
        else:
            entry |= {"type": "text", "value": "" if field.get("default") is None else str(field["default"])}
        fields.append(entry)
    mode = "formdata" if MULTIPART in content else "urlencoded"
    return {"mode": mode, mode: fields}


def saved_responses(openapi: Json, operation: Json) -> list[Json]:
    """A saved response per documented example: every success, and any other answer whose example is its own."""
    saved: list[Json] = []
    for code, response in operation.get("responses", {}).items():
        if not code.isdigit():
            continue
        for media_type, media in resolve(openapi, response).get("content", {}).items():
            own = "example" in media or "examples" in media
            example = first_example(openapi, media) if own or code.startswith("2") else None
            if example is None:
                continue
            try:
                status = http.HTTPStatus(int(code)).phrase
            except ValueError:
                status = ""
            text = example if isinstance(example, str) else json.dumps(example, indent=2, ensure_ascii=False)
            saved.append(
                {
                    "name": f"{code} {status}".strip(),
                    "code": int(code),
                    "status": status,
                    "header": [{"key": "Content-Type", "value": media_type}],
                    "body": text,
                    "_postman_previewlanguage": "json" if "json" in media_type else "text",
                }
            )
            break
    return saved


def keep_ids(openapi: Json, operation: Json, parameters: list[Json], path_names: set[str]) -> list[str]:
    """A test script that keeps the ids an answer returns (the upload's ``request_id``) in the collection variables
    the path parameters of the other requests read, so they can be sent one after the other."""
    if any(p.get("in") == "path" for p in parameters):
        return []
    returned: set[str] = set()
    for code, response in operation.get("responses", {}).items():
        if code.startswith("2"):
            schema = resolve(openapi, resolve(openapi, response).get("content", {}).get(JSON, {}).get("schema", {}))
            returned |= set(schema.get("properties", {})) & path_names
    if not returned:
        return []
    lines = ["if (pm.response.code < 300) {", "    const answer = pm.response.json();"]
    lines += [f'    pm.collectionVariables.set("{variable(name)}", answer.{name});' for name in sorted(returned)]
    return [*lines, "}"]


def path_parameter_names(openapi: Json) -> set[str]:
    names: set[str] = set()
    for path_item in openapi.get("paths", {}).values():
        operations = [op for method, op in path_item.items() if method in HTTP_METHODS]
        for parameter in [
            *path_item.get("parameters", []),
            *(p for op in operations for p in op.get("parameters", [])),
        ]:
            parameter = resolve(openapi, parameter)
            if parameter.get("in") == "path":
                names.add(parameter["name"])
    return names


def first_example(openapi: Json, media: Json) -> Any:
    """A media type's ``example``, else the first of its ``examples``, else its schema's first example."""
    if "example" in media:
        return media["example"]
    for example in media.get("examples", {}).values():
        return resolve(openapi, example).get("value")
    schema = resolve(openapi, media.get("schema", {}))
    if schema.get("examples"):
        return schema["examples"][0]
    return schema.get("example")


def resolve(openapi: Json, node: Json) -> Json:
    """Follow a local ``$ref`` (``#/components/...``)."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = openapi
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def variable(name: str) -> str:
    """``request_id`` -> ``requestId``, the collection variable a path parameter reads."""
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def _default(parameter: Json) -> str:
    default = parameter.get("schema", {}).get("default")
    return "" if default is None else str(default)


def _described(text: str | None) -> Json:
    return {"description": text} if text else {}


def render(collection: Json) -> str:
    return json.dumps(collection, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    collection = build(openapi_schema())
    OUTPUT.write_text(render(collection), encoding="utf-8")
    count = sum(len(folder.get("item", [folder])) for folder in collection["item"])
    print(f"wrote {OUTPUT.relative_to(REPO)}: {count} requests in {len(collection['item'])} folders")


if __name__ == "__main__":
    main()
