"""Test inputs: real image files of several kinds, good and bad."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
MODEL_REPOSITORY = REPO / "model_repository"
DATA = REPO.parent / "shared" / "data"


def jpeg(seed: int = 0, size: tuple[int, int] = (320, 240), quality: int = 90) -> bytes:
    """A JPEG of smooth random colour blobs (so different seeds give different embeddings)."""
    rng = np.random.default_rng(seed)
    small = (rng.random((6, 8, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png(seed: int = 0, size: tuple[int, int] = (64, 48), mode: str = "RGBA") -> bytes:
    rng = np.random.default_rng(seed)
    channels = len(mode)
    pixels = (rng.random((size[1], size[0], channels)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze() if channels == 1 else pixels, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    data = jpeg(1, (640, 480))
    return data[: len(data) // 2]


def huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG claiming absurd dimensions (a decompression bomb's header); tiny on disk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def caltech_root() -> Path:
    return DATA / "caltech101"


def jpeg_with_orientation(orientation: int, size: tuple[int, int] = (64, 32)) -> bytes:
    """A JPEG whose stored pixels are `size` with an EXIF orientation tag (6 = rotate 90 CW)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def grey16_png(level: int, size: tuple[int, int] = (32, 32)) -> bytes:
    """A 16-bit greyscale PNG of one level (0-65535)."""
    buffer = io.BytesIO()
    Image.fromarray(np.full(size[::-1], level, dtype=np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="TIFF")
    return buffer.getvalue()
