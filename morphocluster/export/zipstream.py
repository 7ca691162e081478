"""A ZIP writer whose memory does not grow with the number of members.

`zipfile.ZipFile` keeps a `ZipInfo` per member until it writes the central directory at the
end: about 700 bytes each, 700 MB for an export of a million images. `ZipWriter` writes each
member's central directory record to a spool file on disk as soon as the member is written, and
copies the spool to the end at `close()`. Members are files already on disk (images stored as
they are, text deflated); ZIP64 records are written where sizes, offsets or the count need them.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

STORED, DEFLATED = 0, 8
ZIP64_AT = (1 << 31) - 1  # as zipfile: sizes and offsets from here on go into ZIP64 fields
BLOCK = 1 << 20


def _dos_time(mtime: float) -> tuple[int, int]:
    t = time.localtime(mtime)
    if t.tm_year < 1980:
        return 0, (0 << 9) | (1 << 5) | 1
    return ((t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2),
            ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday)


class ZipWriter:
    """Write a ZIP file member by member; the central directory waits in `spool` on disk."""

    def __init__(self, path: str | os.PathLike, spool: str | os.PathLike, zip64_at: int = ZIP64_AT):
        self.fp = open(path, "wb")
        self.spool_path = Path(spool)
        self.spool = open(self.spool_path, "w+b")
        self.zip64_at = zip64_at
        self.count = 0

    def write(self, src: str | os.PathLike, name: str, method: int = STORED) -> None:
        """Add the file `src` as member `name` (stored, or deflated with DEFLATED)."""
        st = os.stat(src)
        try:
            raw = name.encode("ascii")
            flags = 0
        except UnicodeEncodeError:
            raw, flags = name.encode("utf-8"), 0x800
        dostime, dosdate = _dos_time(st.st_mtime)
        offset = self.fp.tell()
        # sizes known from here on only roughly (deflate may grow a little): ZIP64 with margin
        big = st.st_size + st.st_size // 100 + 1024 >= self.zip64_at
        extra = struct.pack("<HHQQ", 1, 16, 0, 0) if big else b""
        version = 45 if big else 20
        self.fp.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, version, flags, method, dostime,
                                  dosdate, 0, 0, 0, len(raw), len(extra)) + raw + extra)
        start = self.fp.tell()
        crc, size = 0, 0
        comp = zlib.compressobj(6, zlib.DEFLATED, -15) if method == DEFLATED else None
        with open(src, "rb") as f:
            while block := f.read(BLOCK):
                crc, size = zlib.crc32(block, crc), size + len(block)
                self.fp.write(comp.compress(block) if comp else block)
        if comp:
            self.fp.write(comp.flush())
        end = self.fp.tell()
        csize = end - start
        if not big and max(size, csize) >= self.zip64_at:
            raise OSError(f"{src}: grew to {size} bytes while it was added to the ZIP")
        self.fp.seek(offset + 14)
        if big:
            self.fp.write(struct.pack("<III", crc, 0xFFFFFFFF, 0xFFFFFFFF))
            self.fp.seek(offset + 30 + len(raw) + 4)
            self.fp.write(struct.pack("<QQ", size, csize))
        else:
            self.fp.write(struct.pack("<III", crc, csize, size))
        self.fp.seek(end)
        z64 = [v for v in (size, csize) if big] + ([offset] if offset >= self.zip64_at else [])
        cextra = struct.pack("<HH" + "Q" * len(z64), 1, 8 * len(z64), *z64) if z64 else b""
        self.spool.write(struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | (45 if z64 else 20), 45 if z64 else 20,
            flags, method, dostime, dosdate, crc, 0xFFFFFFFF if big else csize,
            0xFFFFFFFF if big else size, len(raw), len(cextra), 0, 0, 0,
            (st.st_mode & 0xFFFF) << 16, 0xFFFFFFFF if offset >= self.zip64_at else offset)
            + raw + cextra)
        self.count += 1

    def close(self) -> None:
        """Write the central directory and the end records, and close the file."""
        cd_at = self.fp.tell()
        self.spool.seek(0)
        while block := self.spool.read(BLOCK):
            self.fp.write(block)
        cd_size = self.fp.tell() - cd_at
        n = self.count
        if n >= 0xFFFF or cd_at >= self.zip64_at or cd_size >= self.zip64_at:
            at = self.fp.tell()
            self.fp.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_at))
            self.fp.write(struct.pack("<IIQI", 0x07064B50, 0, at, 1))
        self.fp.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                                  min(cd_size, 0xFFFFFFFF), min(cd_at, 0xFFFFFFFF), 0))
        self.abort()

    def abort(self) -> None:
        """Close the files (the ZIP as it is, unfinished) and remove the spool."""
        self.fp.close()
        self.spool.close()
        self.spool_path.unlink(missing_ok=True)
