"""Decoding untrusted bytes: every bad kind of input is refused with a message saying why."""

import numpy as np
import pytest

from imsearch.core.errors import InvalidArgument, ResourceExhausted
from services.encoder.images import decode_image, preprocess
from services.encoder.model_spec import Preprocessing
from tests.helpers import huge_png_header, jpeg, png, truncated_jpeg

LIMITS = {"max_bytes": 1_000_000, "max_pixels": 10_000_000}
SPEC = Preprocessing(resize=256, crop_size=224, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a decodable image"),
        (truncated_jpeg(), "could not be decoded"),
        (huge_png_header(), "over the 10000000-pixel limit"),
    ],
)
def test_bad_images_are_invalid_argument(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        decode_image(data, **LIMITS)


def test_oversized_file_is_resource_exhausted() -> None:
    with pytest.raises(ResourceExhausted, match="over the 100-byte limit"):
        decode_image(jpeg(), max_bytes=100, max_pixels=10_000_000)


@pytest.mark.parametrize("data", [jpeg(), png(mode="RGBA"), png(mode="L")])
def test_any_mode_decodes_to_rgb(data: bytes) -> None:
    assert decode_image(data, **LIMITS).mode == "RGB"


@pytest.mark.parametrize("size", [(320, 240), (240, 320), (50, 900)])
def test_preprocess_gives_normalised_chw_crop(size: tuple[int, int]) -> None:
    pixels = preprocess(decode_image(jpeg(size=size), **LIMITS), SPEC)
    assert pixels.shape == (3, 224, 224)
    assert pixels.dtype == np.float32
    assert pixels.min() >= -2.0 - 1e-6 and pixels.max() <= 2.0 + 1e-6  # (x - 0.5) / 0.25


def test_preprocess_nhwc_layout() -> None:
    spec = SPEC.model_copy(update={"layout": "NHWC"})
    assert preprocess(decode_image(jpeg(), **LIMITS), spec).shape == (224, 224, 3)
