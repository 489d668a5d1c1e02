"""Encoders that need tens of bytes a pixel are kept to sizes that fit a pool process's memory budget."""

from __future__ import annotations

import pytest

from batchpress.processing import compress
from batchpress.processing.compress import ImageRejected, compress_image
from tests.support.photos import make_image


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = {name: 200_000 for name in compress.ENCODER_MAX_PIXELS}
    monkeypatch.setattr(compress, "ENCODER_MAX_PIXELS", limits)


@pytest.mark.usefixtures("small_limits")
def test_a_requested_format_over_its_limit_is_refused_with_a_way_out() -> None:
    with pytest.raises(ImageRejected, match=r"640x480 = 0.3 MP; AVIF output is limited to 0 MP: ask for a max_dim"):
        compress_image(make_image("jpeg", 1, (640, 480)), output_format="avif")
    with pytest.raises(ImageRejected, match="ask for a smaller max_dimension"):
        compress_image(make_image("jpeg", 1, (640, 480)), output_format="avif", max_dimension=600)
    shrunk = compress_image(make_image("jpeg", 1, (640, 480)), output_format="avif", max_dimension=400)
    assert (shrunk.format, shrunk.width) == ("AVIF", 400)


@pytest.mark.usefixtures("small_limits")
def test_an_original_format_over_its_limit_keeps_the_input() -> None:
    data = make_image("webp_alpha", 2, (640, 480))
    result = compress_image(data)
    assert result.kept_original
    assert result.data == data
    assert compress_image(make_image("webp", 2, (640, 480))).format == "WEBP"  # no alpha, no limit
