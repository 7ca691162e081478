"""What every exporter shares: the report, and writing a folder or ZIP atomically."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from ..leftovers import remove_leftovers
from .zipstream import DEFLATED, ZipWriter

MAX_EXAMPLES = 20


class ExportError(RuntimeError):
    """An export cannot be written (bad output path, unknown format, nothing to export...)."""


@dataclass
class ExportReport:
    format: str
    out: str
    n_objects: int = 0          # rows written
    n_labelled: int = 0
    n_unlabelled: int = 0
    n_images: int = 0           # image files written
    n_missing_images: int = 0
    missing_images: list = field(default_factory=list)  # first object ids whose image is missing
    warnings: list = field(default_factory=list)

    def missing_image(self, object_id: str) -> None:
        self.n_missing_images += 1
        if len(self.missing_images) < MAX_EXAMPLES:
            self.missing_images.append(object_id)

    def count(self, labelled: bool) -> None:
        self.n_objects += 1
        if labelled:
            self.n_labelled += 1
        else:
            self.n_unlabelled += 1

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"Exported {self.n_objects} objects ({self.n_labelled} labelled, "
                 f"{self.n_unlabelled} unlabelled) as {self.format} to {self.out}"]
        if self.n_images:
            lines.append(f"  {self.n_images} images written")
        if self.n_missing_images:
            lines.append(f"  {self.n_missing_images} images missing, e.g. "
                         + ", ".join(self.missing_images[:5]))
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def ecotaxa_datetime(dt: datetime | None) -> tuple[str, str]:
    """Return ('YYYYMMDD', 'HHMMSS') of a UTC datetime, or empty strings."""
    if dt is None:
        return "", ""
    return (f"{dt.year:04d}{dt.month:02d}{dt.day:02d}",
            f"{dt.hour:02d}{dt.minute:02d}{dt.second:02d}")


def iso_utc(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt is not None else ""


class FileSink:
    """Write one text file `out` (a table without images); it appears only at `commit()`."""

    is_zip = False

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        parent = self.out.parent
        if not parent.is_dir():
            raise ExportError(f"{self.out}: folder {parent} does not exist")
        if self.out.is_dir():
            raise ExportError(f"{self.out}: is a folder, expected a file name")
        remove_leftovers(parent, rf"\.{re.escape(self.out.name)}\.tmp(\d+)")  # of killed exports
        self._tmp = parent / f".{self.out.name}.tmp{os.getpid()}"
        self._opened = False

    def open_text(self, rel: str):
        """Return the file for writing (its name is `out`'s, whatever `rel` says)."""
        if self._opened:
            raise ExportError(f"{self.out}: a single file holds one table only")
        self._opened = True
        return open(self._tmp, "w", encoding="utf-8", newline="")

    def add_file(self, src: Path, rel: str) -> None:
        raise ExportError(f"{self.out}: a single file holds no images")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            os.replace(self._tmp, self.out)
        else:
            self._tmp.unlink(missing_ok=True)
        return False


class Sink:
    """Write files into a folder or a ZIP; nothing appears at `out` until `commit()`.

    A ZIP is chosen when `out` ends with .zip. An existing non-empty folder is refused (its
    files are never touched); an existing file is replaced only at commit. `scratch(name)` is
    a path in a folder beside `out` that goes when the sink is done (for on-disk working files).
    """

    def __init__(self, out: str | os.PathLike, force_zip: bool = False):
        self.out = Path(out)
        self.is_zip = force_zip or self.out.suffix.lower() == ".zip"
        parent = self.out.parent
        if not parent.is_dir():
            raise ExportError(f"{self.out}: folder {parent} does not exist")
        remove_leftovers(parent, rf"\.{re.escape(self.out.name)}\.tmp(\d+)(\.d)?")  # of killed exports
        if self.is_zip:
            if self.out.is_dir():
                raise ExportError(f"{self.out}: is a folder, expected a .zip file name")
            self._tmp = parent / f".{self.out.name}.tmp{os.getpid()}"
            # a ZIP takes no new member while one is open for writing: text goes to disk first
            self._scratch = parent / f".{self.out.name}.tmp{os.getpid()}.d"
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch.mkdir()
            self._zip = ZipWriter(self._tmp, self._scratch / "central-directory")
            self._pending: list[tuple[Path, str]] = []
        else:
            if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
                raise ExportError(f"{self.out}: exists and is not an empty folder; "
                                  "choose a new folder or a .zip file name")
            self._tmp = parent / f".{self.out.name}.tmp{os.getpid()}"
            if self._tmp.exists():
                shutil.rmtree(self._tmp)
            self._tmp.mkdir()
            self._scratch = parent / f".{self.out.name}.tmp{os.getpid()}.d"
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch.mkdir()
        self._done = False

    def scratch(self, name: str) -> Path:
        """Return a path for a working file that is removed with the sink's temporary files."""
        return self._scratch / name

    def open_text(self, rel: str):
        """Return a text file (UTF-8, '\\n' line ends) for writing `rel`."""
        if self.is_zip:
            path = self._scratch / f"text-{len(self._pending)}"
            self._pending.append((path, rel))
        else:
            path = self._tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w", encoding="utf-8", newline="")

    def add_file(self, src: Path, rel: str) -> None:
        """Copy the file `src` to `rel` (stored uncompressed in a ZIP: images already are)."""
        if self.is_zip:
            self._zip.write(src, rel)
        else:
            dst = self._tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)

    def commit(self) -> None:
        if self.is_zip:
            for path, rel in self._pending:
                self._zip.write(path, rel, DEFLATED)
            self._zip.close()
            os.replace(self._tmp, self.out)
        else:
            if self.out.exists():
                self.out.rmdir()  # empty, checked at start
            os.replace(self._tmp, self.out)
        shutil.rmtree(self._scratch, ignore_errors=True)
        self._done = True

    def abort(self) -> None:
        if self._done:
            return
        try:
            if self.is_zip:
                try:
                    self._zip.abort()
                finally:
                    self._tmp.unlink(missing_ok=True)
            else:
                shutil.rmtree(self._tmp, ignore_errors=True)
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False
