"""Decoding untrusted bytes: every bad kind of input is refused with a message saying why."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from imsearch.core.errors import InvalidArgument, ResourceExhausted
from services.encoder.images import centre_crop_box, decode_image, preprocess
from services.encoder.model_spec import Preprocessing
from tests.helpers import (
    REPO,
    grey16_png,
    huge_png_header,
    jpeg,
    jpeg_with_orientation,
    png,
    tiff,
    truncated_jpeg,
)

LIMITS = {"max_bytes": 1_000_000, "max_pixels": 10_000_000}
SPEC = Preprocessing(resize=256, crop_size=224, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a decodable image"),
        (truncated_jpeg(), "could not be decoded"),
        (huge_png_header(), "over the 10000000-pixel limit"),
        (png(size=(1, 10_000), mode="L"), "aspect ratio over the limit of 32:1"),
        (png(size=(40_000, 1), mode="L"), "aspect ratio over the limit of 32:1"),
        (tiff(), "accepted formats: JPEG"),
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


def resize_then_crop(image: Image.Image, spec: Preprocessing) -> Image.Image:
    """The textbook way (and this encoder's before): resize the whole image, then crop."""
    scale = spec.resize / min(image.size)
    size = (max(spec.crop_size, round(image.width * scale)), max(spec.crop_size, round(image.height * scale)))
    resized = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (size[0] - spec.crop_size) // 2, (size[1] - spec.crop_size) // 2
    return resized.crop((left, top, left + spec.crop_size, top + spec.crop_size))


@pytest.mark.parametrize("size", [(320, 240), (240, 320), (1000, 700), (50, 900), (8, 256), (257, 255)])
def test_cropping_in_source_coordinates_gives_the_same_pixels(size: tuple[int, int]) -> None:
    image = decode_image(jpeg(size=size), **LIMITS)
    box = centre_crop_box(*image.size, SPEC)
    direct = image.resize((224, 224), Image.Resampling.BILINEAR, box=box)
    reference = resize_then_crop(image, SPEC)
    difference = np.abs(np.asarray(direct, np.int16) - np.asarray(reference, np.int16))
    assert difference.max() <= 1  # same filter taps; at most one level of rounding apart


def test_a_thin_strip_is_preprocessed_in_bounded_memory() -> None:
    """1x40000 once peaked at 13.4 GB (upscaled to 256 wide before cropping). With the aspect
    limit lifted, preprocessing alone must stay within a few MB of the decoded strip."""
    script = f"""
import resource, sys
sys.path.insert(0, {str(REPO)!r})
from services.encoder.images import decode_image, preprocess
from services.encoder.model_spec import Preprocessing
from tests.helpers import png
data = png(size=(1, 40_000), mode="L")
image = decode_image(data, 10**6, 10**7, max_aspect_ratio=1e9)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pixels = preprocess(image, Preprocessing(resize=256, crop_size=224, mean=(0, 0, 0), std=(1, 1, 1)))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(pixels.shape, (after - before) // 1024)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    shape, grown_mb = result.stdout.rsplit(" ", 1)
    assert shape == "(3, 224, 224)"
    assert int(grown_mb) < 64, result.stdout


def test_exif_orientation_is_honoured() -> None:
    # Stored 64 wide, 32 high; orientation 6 means a viewer shows it rotated: 32 wide, 64 high.
    assert decode_image(jpeg_with_orientation(6), **LIMITS).size == (32, 64)
    assert decode_image(jpeg_with_orientation(1), **LIMITS).size == (64, 32)


@pytest.mark.parametrize("level", [0, 16_384, 32_768, 65_535])
def test_sixteen_bit_grey_is_scaled_not_clipped(level: int) -> None:
    pixels = np.asarray(decode_image(grey16_png(level), **LIMITS))
    assert pixels.shape == (32, 32, 3)
    assert abs(int(pixels.max()) - round(level / 257)) <= 1
    assert int(pixels.min()) == int(pixels.max())


def test_phone_jpeg_with_extra_frames_is_accepted() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(
        buffer, format="MPO", save_all=True, append_images=[Image.new("RGB", (40, 30))]
    )
    assert decode_image(buffer.getvalue(), **LIMITS).size == (40, 30)
