"""Read plankton images safely: size, full decode check, greyscale or RGB arrays."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif"})


# Real plankton vignettes are small: the largest in ../shared/data are 1.7 megapixels
# (ZooScan, 1389x1255) and 7:1 (ISIIS); full camera frames reach about 5 megapixels.
DEFAULT_MAX_PIXELS = 16_000_000
DEFAULT_MAX_ASPECT_RATIO = 100.0
DEFAULT_MAX_FILE_SIZE = 64 << 20
# JPEG and PNG do not compress further; a ZIP entry expanding more than this is taken for a bomb
DEFAULT_MAX_ZIP_RATIO = 200.0
LIMITS_KEY = "limits"  # where the project config (morphocluster.json) keeps them
RAISE_HINT = ("raise \"{key}\" under \"limits\" in the project's morphocluster.json (for one "
              "import: `morphocluster import --{opt}`)")


class ImageError(ValueError):
    """An image file is missing, not an image, or corrupt; the message names the file."""


class ImageLimitError(ImageError):
    """An image is larger, longer or heavier than the project's limits allow."""


@dataclass(frozen=True)
class ImageLimits:
    """How large an image (or an imported ZIP entry) may be before it is refused, not decoded."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
    max_file_size: int = DEFAULT_MAX_FILE_SIZE  # bytes of one image file (or ZIP entry)
    max_zip_ratio: float = DEFAULT_MAX_ZIP_RATIO  # uncompressed / compressed size of a ZIP entry

    @classmethod
    def from_config(cls, config: dict | None, **override) -> "ImageLimits":
        """Return the limits of a project config's "limits", with `override` (None: keep)."""
        names = {f.name for f in fields(cls)}
        given = dict((config or {}).get(LIMITS_KEY) or {})
        unknown = set(given) - names
        if unknown:
            raise ValueError(f"unknown image limits {sorted(unknown)} in the project config; "
                             f"known: {sorted(names)}")
        given.update({k: v for k, v in override.items() if v is not None})
        out = cls(**given)
        for f in fields(cls):
            if not getattr(out, f.name) > 0:
                raise ValueError(f"image limit {f.name} must be positive, not {getattr(out, f.name)!r}")
        return out

    def to_config(self) -> dict:
        return asdict(self)

    def check_size(self, size: tuple[int, int], name: str) -> None:
        """Raise ImageLimitError if a (width, height) image is beyond the limits."""
        w, h = size
        if w < 1 or h < 1:
            raise ImageLimitError(f"{name}: {w}x{h} px, an image without pixels")
        ratio = max(w, h) / min(w, h)
        if ratio > self.max_aspect_ratio:
            raise ImageLimitError(
                f"{name}: {w}x{h} px, an aspect ratio of {ratio:.0f}:1, above the limit of "
                f"{self.max_aspect_ratio:g}:1; "
                + RAISE_HINT.format(opt="max-aspect-ratio", key="max_aspect_ratio"))
        if w * h > self.max_pixels:
            raise ImageLimitError(
                f"{name}: {w}x{h} px ({w * h / 1e6:.1f} megapixels), above the limit of "
                f"{self.max_pixels / 1e6:g} megapixels; "
                + RAISE_HINT.format(opt="max-pixels", key="max_pixels"))

    def check_file_size(self, n_bytes: int, name: str) -> None:
        """Raise ImageLimitError if an image file of `n_bytes` is above the limit."""
        if n_bytes > self.max_file_size:
            raise ImageLimitError(
                f"{name}: {mib(n_bytes)}, above the file size limit of {mib(self.max_file_size)}; "
                + RAISE_HINT.format(opt="max-file-size", key="max_file_size"))


def mib(n_bytes: int) -> str:
    """Return a byte count for messages ("1.5 MiB")."""
    if n_bytes >= 1 << 30:
        return f"{n_bytes / (1 << 30):g} GiB" if n_bytes % (1 << 30) == 0 else f"{n_bytes / (1 << 30):.1f} GiB"
    return f"{n_bytes / (1 << 20):.1f} MiB" if n_bytes >= 1 << 20 else f"{n_bytes} bytes"


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
    except Image.DecompressionBombError as exc:
        raise ImageLimitError(f"{name}: image has too many pixels ({exc})") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{name}: corrupt image ({exc})") from exc


def check_image_bytes(data: bytes, name: str, limits: ImageLimits | None = None) -> tuple[int, int]:
    """Decode an image completely and return (width, height); raise ImageError if corrupt or
    beyond `limits` (checked from the header, before any pixel is decoded)."""
    if not data:
        raise ImageError(f"{name}: empty file")
    limits = limits or ImageLimits()
    limits.check_file_size(len(data), name)
    with _open(io.BytesIO(data), name) as img:
        limits.check_size(img.size, name)
        try:
            img.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ImageError(f"{name}: corrupt image ({exc})") from exc
        return img.size


def image_size(path: str | Path) -> tuple[int, int]:
    """Return (width, height) of an image file without decoding its pixels."""
    with _open(path, str(path)) as img:
        return img.size


def check_image_file(path: str | Path, limits: ImageLimits | None = None, name: str | None = None) -> None:
    """Raise ImageError if the file at `path` is not an image or beyond `limits` (header only)."""
    name = name or str(path)
    limits = limits or ImageLimits()
    try:
        limits.check_file_size(Path(path).stat().st_size, name)
    except FileNotFoundError as exc:
        raise ImageError(f"{name}: image file not found") from exc
    with _open(path, name) as img:
        limits.check_size(img.size, name)


def load_image(path: str | Path, mode: str = "L", limits: ImageLimits | None = None) -> np.ndarray:
    """Load an image as a uint8 array: mode "L" gives (H, W), "RGB" gives (H, W, 3).

    Transparent pixels are composited on white; 16-bit images are scaled to 8 bit. An image
    beyond `limits` raises ImageLimitError before it is decoded.
    """
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', not {mode!r}")
    with _open(path, str(path)) as img:
        (limits or ImageLimits()).check_size(img.size, str(path))
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


# (leading bytes, MIME type, file extension); WebP is RIFF....WEBP, checked apart
SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png", "png"), (b"\xff\xd8\xff", "image/jpeg", "jpg"),
              (b"GIF87a", "image/gif", "gif"), (b"GIF89a", "image/gif", "gif"),
              (b"II*\x00", "image/tiff", "tif"), (b"MM\x00*", "image/tiff", "tif"),
              (b"II+\x00", "image/tiff", "tif"), (b"MM\x00+", "image/tiff", "tif"),
              (b"BM", "image/bmp", "bmp"))


def image_type_of(head: bytes) -> tuple[str, str] | None:
    """Return (MIME type, extension) that the first 16 bytes of a file show, or None if they
    are not those of PNG, JPEG, GIF, TIFF, BMP or WebP."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", "webp"
    return next(((mime, ext) for magic, mime, ext in SIGNATURES if head.startswith(magic)), None)


def has_image_signature(head: bytes) -> bool:
    """True if the first bytes of a file are those of a format in IMAGE_EXTENSIONS."""
    t = image_type_of(head)
    return t is not None and t[1] != "webp" and head[:4] not in (b"II+\x00", b"MM\x00+")
