"""Decoding untrusted image bytes into RGB pixels, with limits checked before decoding."""

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from imsearch.core.errors import InvalidArgument, ResourceExhausted
from services.encoder.model_spec import Preprocessing


def decode_image(data: bytes, max_bytes: int, max_pixels: int, target_size: int | None = None) -> Image.Image:
    """Returns an RGB image, or raises InvalidArgument/ResourceExhausted saying what was wrong.

    `target_size` lets JPEG decode at a reduced scale (PIL's draft mode) when the image is much
    larger than the model input: same result quality, several times faster on big photos.
    """
    if not data:
        raise InvalidArgument("image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ResourceExhausted(f"image is {len(data)} bytes, over the {max_bytes}-byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width <= 0 or height <= 0:
                raise InvalidArgument(f"image has invalid dimensions {width}x{height}")
            if width * height > max_pixels:
                raise InvalidArgument(f"image is {width}x{height} pixels, over the {max_pixels}-pixel limit")
            if target_size is not None and image.format == "JPEG":
                image.draft("RGB", (target_size, target_size))
            image.load()
            return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # PIL's own guard fires on open for the most absurd sizes, before our check can.
        raise InvalidArgument(
            f"image dimensions are over the {max_pixels}-pixel limit (decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise InvalidArgument("data is not a decodable image") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt files
        raise InvalidArgument(f"image could not be decoded: {exc}") from None


_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def preprocess(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    """Resize shorter side, centre crop, scale to [0, 1], normalise; returns float32 CHW or HWC."""
    width, height = image.size
    scale = spec.resize / min(width, height)
    new_size = (
        max(spec.crop_size, round(width * scale)),
        max(spec.crop_size, round(height * scale)),
    )
    image = image.resize(new_size, _RESAMPLE[spec.interpolation])
    left = (new_size[0] - spec.crop_size) // 2
    top = (new_size[1] - spec.crop_size) // 2
    image = image.crop((left, top, left + spec.crop_size, top + spec.crop_size))
    scaled = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    pixels: np.ndarray = (scaled - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels, dtype=np.float32)
