"""Decoding untrusted image bytes into RGB pixels, with every step's memory bounded.

The bounds, in order: the file's bytes; only the formats we accept are tried (no TIFF, PSD or
EPS parsers on untrusted input); the pixel count and aspect ratio from the header, before any
pixel is decoded; JPEGs decode at a reduced scale when much larger than the model input; and
preprocessing resamples the centre crop straight from source coordinates, so no intermediate
image is ever larger than the source or the model input (a 1x10000 strip once became a
256x2560000 buffer).
"""

import io
import math
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imsearch.core.errors import InvalidArgument, TooLarge
from services.encoder.model_spec import Preprocessing

# Pillow's JPEG parser also opens the MPO files many phone cameras write (JPEG + extra frames).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
DEFAULT_MAX_ASPECT_RATIO = 32.0
_EDGE = 1e-6  # float rounding at a region's far edge (x + width is 1.0000001)
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def decode_image(
    data: bytes,
    max_bytes: int,
    max_pixels: int,
    target_size: int | None = None,
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO,
) -> Image.Image:
    """Returns an upright RGB image, or raises InvalidArgument/ResourceExhausted saying why not.

    `target_size` lets JPEG decode at a reduced scale (PIL's draft mode) when the image is much
    larger than the model input: same result quality, several times faster on big photos.
    """
    if not data:
        raise InvalidArgument("image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise TooLarge(f"image is {len(data)} bytes, over the {max_bytes}-byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            _check_size(*image.size, max_pixels, max_aspect_ratio)
            if target_size is not None and image.format in ("JPEG", "MPO"):
                image.draft("RGB", (target_size, target_size))
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # PIL's own guard fires on open for the most absurd sizes, before our check can.
        raise InvalidArgument(
            f"image dimensions are over the {max_pixels}-pixel limit (decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise InvalidArgument(
            f"data is not a decodable image (accepted formats: {', '.join(ACCEPTED_FORMATS)})"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt files
        raise InvalidArgument(f"image could not be decoded: {exc}") from None


def _check_size(width: int, height: int, max_pixels: int, max_aspect_ratio: float) -> None:
    if width <= 0 or height <= 0:
        raise InvalidArgument(f"image has invalid dimensions {width}x{height}")
    if width * height > max_pixels:
        raise InvalidArgument(f"image is {width}x{height} pixels, over the {max_pixels}-pixel limit")
    if max(width, height) > max_aspect_ratio * min(width, height):
        raise InvalidArgument(
            f"image is {width}x{height} pixels, an aspect ratio over the limit of {max_aspect_ratio:g}:1"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    # PIL's convert("RGB") clips 16-bit grey at 255 (all but black turns white): scale it instead.
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = np.clip(np.asarray(image, dtype=np.float32) / 257.0, 0, 255).round().astype(np.uint8)
        image = Image.fromarray(grey, mode="L")
    return image if image.mode == "RGB" else image.convert("RGB")


_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


# A region as fractions of the image: (x, y, width, height).
Region = tuple[float, float, float, float]


def validate_region(region: Region) -> None:
    """INVALID_ARGUMENT for a region not inside the image (or not finite)."""
    x, y, width, height = region
    inside = (
        all(math.isfinite(v) for v in region)
        and x >= 0
        and y >= 0
        and width > 0
        and height > 0
        and x + width <= 1 + _EDGE
        and y + height <= 1 + _EDGE
    )
    if not inside:
        raise InvalidArgument(
            f"box (x={x:g}, y={y:g}, width={width:g}, height={height:g}) is not inside the image: "
            "fractions of its size with 0 <= x, y, width and height > 0, x + width <= 1, y + height <= 1"
        )


def crop_region(
    image: Image.Image, region: Region, max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
) -> Image.Image:
    """The region's pixels (at least one); the region must have passed `validate_region`."""
    x, y, width, height = region
    columns, rows = image.size
    left, top = min(math.floor(x * columns), columns - 1), min(math.floor(y * rows), rows - 1)
    right = min(columns, max(left + 1, math.ceil((x + width) * columns - _EDGE)))
    bottom = min(rows, max(top + 1, math.ceil((y + height) * rows - _EDGE)))
    if max(right - left, bottom - top) > max_aspect_ratio * min(right - left, bottom - top):
        raise InvalidArgument(
            f"box is {right - left}x{bottom - top} pixels, "
            f"an aspect ratio over the limit of {max_aspect_ratio:g}:1"
        )
    return image.crop((left, top, right, bottom))


def centre_crop_box(width: int, height: int, spec: Preprocessing) -> tuple[float, float, float, float]:
    """The source region that "resize the short side to `resize`, centre crop `crop_size`" keeps.

    The same arithmetic as resizing the whole image then cropping (including its rounding), so
    resampling only this box gives the same pixels at a fraction of the memory.
    """
    scale = spec.resize / min(width, height)
    resized_width = max(spec.crop_size, round(width * scale))
    resized_height = max(spec.crop_size, round(height * scale))
    left = (resized_width - spec.crop_size) // 2
    top = (resized_height - spec.crop_size) // 2
    x_scale, y_scale = width / resized_width, height / resized_height
    return (
        left * x_scale,
        top * y_scale,
        (left + spec.crop_size) * x_scale,
        (top + spec.crop_size) * y_scale,
    )


def preprocess(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    """Resize shorter side, centre crop, scale to [0, 1], normalise; returns float32 CHW or HWC."""
    box = centre_crop_box(*image.size, spec)
    image = image.resize((spec.crop_size, spec.crop_size), _RESAMPLE[spec.interpolation], box=box)
    scaled = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    pixels: np.ndarray = (scaled - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels, dtype=np.float32)
