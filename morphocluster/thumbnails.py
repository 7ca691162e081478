"""Thumbnails of object images, made once and cached under the project's cache/ folder.

Callers address images by Object.id only; the stored path is resolved through
`Project.image_path`, which refuses anything outside the project's images/ folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .labels import extra_images
from .store import Object

SIZES = (64, 128, 256)
DEFAULT_SIZE = 128


class ThumbnailError(LookupError):
    """The object does not exist or its image cannot be read."""


def source_path(project, pk: int, rank: int = 0) -> Path:
    """Return the image file of object `pk` (inside the project); `rank` n > 0: its n-th further
    image (EcoTaxa objects with several images)."""
    with project.session() as s:
        obj = s.get(Object, int(pk))
        if obj is None:
            raise ThumbnailError(f"no object with id {pk}")
        rel = obj.path
        if rank:
            extra = extra_images(obj.meta)
            if not 0 < rank <= len(extra):
                raise ThumbnailError(f"object {pk} has no image {rank} ({len(extra)} further images)")
            rel = extra[rank - 1]["path"]
    path = project.image_path(rel)
    if not path.is_file():
        raise ThumbnailError(f"object {pk}: image file {rel} is missing")
    return path


def thumbnail_path(project, pk: int, size: int = DEFAULT_SIZE) -> Path:
    """Return where the thumbnail of object `pk` at `size` px is cached."""
    return project.cache_dir / "thumbs" / str(size) / str(int(pk) // 1000) / f"{int(pk)}.png"


def thumbnail(project, pk: int, size: int = DEFAULT_SIZE) -> Path:
    """Return the cached thumbnail of object `pk`, making it first if needed.

    Images smaller than `size` are kept at their size (plankton images are small; enlarging
    them only blurs); larger ones are shrunk to fit a `size` x `size` box.
    """
    if size not in SIZES:
        raise ThumbnailError(f"thumbnail size {size} not one of {SIZES}")
    out = thumbnail_path(project, pk, size)
    if out.is_file():
        return out
    src = source_path(project, pk)
    from PIL import Image

    try:
        with Image.open(src) as im:
            project.image_limits().check_size(im.size, src.name)  # before any pixel is decoded
            im.thumbnail((size, size))  # JPEG: decoded at a reduced scale (Image.draft)
            if im.mode not in ("L", "RGB", "RGBA", "LA"):
                im = im.convert("RGB")
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp.png")
            im.save(tmp, format="PNG", optimize=False)
            tmp.replace(out)  # atomic: concurrent requests never see half a file
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ThumbnailError(f"object {pk}: cannot read image {src.name}: {exc}") from exc
    return out


def etag(path: Path) -> str:
    """Return a strong ETag for a file from its size and modification time."""
    st = path.stat()
    return hashlib.blake2s(f"{path.name}:{st.st_size}:{st.st_mtime_ns}".encode(), digest_size=8).hexdigest()
