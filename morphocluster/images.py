"""Read plankton images safely: size, full decode check, greyscale or RGB arrays."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif"})


class ImageError(ValueError):
    """An image file is missing, not an image, or corrupt; the message names the file."""


def is_image_name(name: str) -> bool:
    """True for file names with an image extension Pillow reads (case-insensitive)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _open(source, name: str) -> Image.Image:
    try:
        return Image.open(source)
    except FileNotFoundError as exc:
        raise ImageError(f"{name}: image file not found") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image Pillow can read") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{name}: corrupt image ({exc})") from exc


def check_image_bytes(data: bytes, name: str) -> tuple[int, int]:
    """Decode an image completely and return (width, height); raise ImageError if corrupt."""
    if not data:
        raise ImageError(f"{name}: empty file")
    with _open(io.BytesIO(data), name) as img:
        try:
            img.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ImageError(f"{name}: corrupt image ({exc})") from exc
        return img.size


def image_size(path: str | Path) -> tuple[int, int]:
    """Return (width, height) of an image file without decoding its pixels."""
    with _open(path, str(path)) as img:
        return img.size


def load_image(path: str | Path, mode: str = "L") -> np.ndarray:
    """Load an image as a uint8 array: mode "L" gives (H, W), "RGB" gives (H, W, 3).

    Transparent pixels are composited on white; 16-bit images are scaled to 8 bit.
    """
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', not {mode!r}")
    with _open(path, str(path)) as img:
        try:
            img.load()
            img = _to_8bit(img)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            return np.asarray(img.convert(mode))
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"{path}: corrupt image ({exc})") from exc


def _to_8bit(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 0.0
        scale = 255.0 / (65535.0 if img.mode.startswith("I;16") else (hi or 1.0))
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
    return img
