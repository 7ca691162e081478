"""File and folder names that are safe on every file system and map back to the label.

`safe_name` keeps letters (accented ones too, in NFC), digits and `-_.+,()` and writes
every other character as %XX of its UTF-8 bytes, so `unsafe_name` gives the label back exactly
(also after macOS turned the name to NFD). Names that Windows refuses (CON, NUL, trailing dot or
space) get their critical character encoded too. Names that would collide on a case-insensitive
file system get a `~N` suffix from `UniqueNames` (in memory: the few folder names) or
`DiskNames` (every file of an export: the names taken wait in a SQLite file, not in memory);
the export's index file maps them back.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from pathlib import Path
from urllib.parse import unquote

KEEP = set("-_.+,()")  # never '~': it only ever starts a suffix that `UniqueNames` adds
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                    *(f"LPT{i}" for i in range(1, 10))}
_PLAIN = re.compile(r"[A-Za-z0-9_+,()-][A-Za-z0-9_.+,()-]{0,150}")  # fast path: nothing to encode
MAX_BYTES = 200  # below the 255-byte limit of most file systems, room for suffix and extension


def _enc(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8"))


def safe_name(text: str) -> str:
    """Return a file-system-safe, reversible name for `text`."""
    if _PLAIN.fullmatch(text) and text[-1] != "." and text.split(".")[0].upper() not in WINDOWS_RESERVED:
        return text
    text = unicodedata.normalize("NFC", text)
    if not text:
        raise ValueError("an empty label has no file name")
    out = [ch if ch.isalnum() or ch in KEEP else _enc(ch) for ch in text]
    if out[0] == ".":
        out[0] = _enc(".")
    if out[-1] in (".", " "):
        out[-1] = _enc(text[-1])
    name = "".join(out)
    if name.split(".")[0].upper() in WINDOWS_RESERVED:
        name = _enc(name[0]) + name[1:]
    if len(name.encode("utf-8")) > MAX_BYTES:
        # keep it unique: cut and add a short hash of the full text
        import hashlib

        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
        cut = name.encode("utf-8")[:MAX_BYTES - 12].decode("utf-8", "ignore")
        cut = cut[:cut.rfind("%")] if cut.rfind("%") > len(cut) - 3 else cut
        name = f"{cut}~h{digest}"
    return name


def unsafe_name(name: str) -> str:
    """Return the text that `safe_name` encoded (not for names cut to length)."""
    name = unicodedata.normalize("NFC", name)
    name = name.split("~", 1)[0]
    return unquote(name, encoding="utf-8", errors="strict")


class UniqueNames:
    """Hand out names unique even on case-insensitive file systems (`~2`, `~3` suffixes)."""

    def __init__(self):
        self._taken: set[str] = set()

    def take(self, stem: str, suffix: str = "") -> str:
        name, n = stem + suffix, 1
        while name.casefold() in self._taken:
            n += 1
            name = f"{stem}~{n}{suffix}"
        self._taken.add(name.casefold())
        return name


class DiskNames:
    """`UniqueNames` per folder for millions of files: the names taken are kept in a SQLite file
    (its page cache bounded), so memory does not grow with the number of names."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")  # a working file: nothing to recover
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE taken (folder TEXT, name TEXT, PRIMARY KEY (folder, name))"
                        " WITHOUT ROWID")
        self.db.execute("BEGIN")  # one transaction: no commit per name

    def take(self, stem: str, suffix: str = "", folder: str = "") -> str:
        """Return a name in `folder` not taken before (ignoring case): stem+suffix or stem~N+suffix."""
        name, n = stem + suffix, 1
        while self.db.execute("INSERT OR IGNORE INTO taken VALUES (?, ?)",
                              (folder, name.casefold())).rowcount == 0:
            n += 1
            name = f"{stem}~{n}{suffix}"
        return name

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
