"""The sample status answers users read first, the README's and the OpenAPI example: fields that are the schema's,
so a field added to the API is documented in both, and figures that add up as the API's do."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from batchpress.api.schemas import ProductStatus, Progress, RequestStatusOut
from batchpress.config import Settings
from batchpress.models import Reuse
from tests.support.servers import REPO
from tests.test_postman import postman


def status_sample() -> dict[str, Any]:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"A status answer:\n\n```json\n(.*?)\n```", readme, re.DOTALL)
    assert block, "README.md has no sample status answer"
    sample: dict[str, Any] = json.loads(block[1])
    return sample


def openapi_example() -> dict[str, Any]:
    extra = RequestStatusOut.model_config.get("json_schema_extra")
    assert isinstance(extra, dict)
    examples = extra["examples"]
    assert isinstance(examples, list)
    assert isinstance(examples[0], dict)
    return examples[0]


SAMPLES = pytest.mark.parametrize("sample", [status_sample(), openapi_example()], ids=["README", "OpenAPI"])


@SAMPLES
def test_the_sample_shows_the_schemas_fields(sample: dict[str, Any]) -> None:
    assert set(sample) == set(RequestStatusOut.model_fields)
    assert set(sample["progress"]) == set(Progress.model_fields)
    for product in sample["products"]:
        assert set(product) == set(ProductStatus.model_fields)


@SAMPLES
def test_the_samples_sizes_add_up(sample: dict[str, Any]) -> None:
    products, progress = sample["products"], sample["progress"]
    for product in products:
        urls, sizes_in, sizes_out = (
            product[k] for k in ("output_image_urls", "input_image_bytes", "output_image_bytes")
        )
        assert [size is None for size in sizes_in] == [size is None for size in sizes_out] == [u is None for u in urls]
        assert product["bytes_in"] == sum(size for size in sizes_in if size is not None)
        assert product["bytes_out"] == sum(size for size in sizes_out if size is not None)
    assert progress["bytes_in"] == sum(p["bytes_in"] for p in products)
    assert progress["bytes_out"] == sum(p["bytes_out"] for p in products)
    assert progress["bytes_saved"] == progress["bytes_in"] - progress["bytes_out"]
    assert progress["saved_percent"] == round(100 * progress["bytes_saved"] / progress["bytes_in"], 1)


@SAMPLES
def test_the_samples_reuse_lines_up_and_adds_up(sample: dict[str, Any]) -> None:
    reasons = {why.reason for why in Reuse}
    listed = []
    for product in sample["products"]:
        assert len(product["reused"]) == len(product["input_image_urls"])
        for why, url in zip(product["reused"], product["output_image_urls"], strict=True):
            assert why is None or (why in reasons and url is not None)  # only a done image was reused
            listed.append(why)
    assert sample["progress"]["reused"] == sum(why is not None for why in listed) <= sample["progress"]["processed"]


def test_every_setting_and_route_is_documented() -> None:
    """A setting or route added to the service is in the README's tables (#24)."""
    readme = (REPO / "README.md").read_text()
    undocumented = [
        f"BATCHPRESS_{n.upper()}" for n in Settings.model_fields if f"`BATCHPRESS_{n.upper()}`" not in readme
    ]
    assert undocumented == []
    for path, operations in postman.openapi_schema()["paths"].items():
        shown = re.sub(r"\\\{([a-z_]+)\\\}", r"<\1>", re.escape(path))
        for method in operations:
            assert re.search(rf"`{method.upper()} {shown}", readme), f"{method.upper()} {path} is not in README.md"
