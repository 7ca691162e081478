"""Read a ZIP whose directory may list millions of entries, one directory record at a time.

`zipfile.ZipFile` reads the whole central directory into a `ZipInfo` per entry when it opens
(about 600 bytes each: 600 MB for an upload of a million images). `StreamedZip` is a ZipFile
that only finds the directory when it opens; `members()` then reads it a record at a time and
yields each entry's `ZipInfo`, which `open()` (zipfile's own, with its CRC and size checks)
reads as usual. Name lookups (`getinfo`, `namelist`) are not available.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator

_EOCD = struct.Struct("<4s4H2LH")          # end of central directory record
_LOCATOR64 = struct.Struct("<4sLQL")       # ZIP64 end of central directory locator
_EOCD64 = struct.Struct("<4sQ2H2L4Q")      # ZIP64 end of central directory record
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header
_MAX_COMMENT = 0xFFFF
_NEED_64 = 0xFFFFFFFF


class StreamedZip(zipfile.ZipFile):
    """A read-only ZipFile whose directory is read a record at a time by `members()`."""

    def __init__(self, file, mode: str = "r"):
        if mode != "r":
            raise ValueError("StreamedZip only reads")
        super().__init__(file, "r")

    def _RealGetContents(self):  # noqa: N802 - zipfile's hook, called by __init__
        self._cd_offset, self._cd_size, self._concat, self.n_entries = _find_directory(self.fp)

    def members(self) -> Iterator[zipfile.ZipInfo]:
        """Yield the ZipInfo of every entry, in directory order."""
        pos, end = self._cd_offset + self._concat, self._cd_offset + self._concat + self._cd_size
        while pos < end:
            with self._lock:
                self.fp.seek(pos)
                head = self.fp.read(_CENTRAL.size)
                if len(head) != _CENTRAL.size or head[:4] != b"PK\x01\x02":
                    raise zipfile.BadZipFile("bad record in the ZIP directory")
                rec = _CENTRAL.unpack(head)
                n_name, n_extra, n_comment = rec[12], rec[13], rec[14]
                rest = self.fp.read(n_name + n_extra + n_comment)
            pos += _CENTRAL.size + n_name + n_extra + n_comment
            if len(rest) != n_name + n_extra + n_comment:
                raise zipfile.BadZipFile("truncated ZIP directory")
            yield self._info(rec, rest[:n_name], rest[n_name:n_name + n_extra],
                             rest[n_name + n_extra:])

    def _info(self, rec, raw_name: bytes, extra: bytes, comment: bytes) -> zipfile.ZipInfo:
        flags = rec[5]
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        t, d = rec[7], rec[8]
        info = zipfile.ZipInfo(name, ((d >> 9) + 1980, (d >> 5) & 0xF, d & 0x1F,
                                      t >> 11, (t >> 5) & 0x3F, (t & 0x1F) * 2))
        (info.create_version, info.create_system, info.extract_version, info.reserved,
         info.flag_bits, info.compress_type) = rec[1], rec[2], rec[3], rec[4], flags, rec[6]
        info.CRC, info.compress_size, info.file_size = rec[9], rec[10], rec[11]
        info.volume, info.internal_attr, info.external_attr = rec[15], rec[16], rec[17]
        info.header_offset = rec[18]
        info.extra, info.comment = extra, comment
        _zip64_sizes(info)
        info.header_offset += self._concat
        return info


def _find_directory(fp) -> tuple[int, int, int, int]:
    """Return the central directory's offset, size, the bytes prepended to the archive, and
    how many entries it lists."""
    fp.seek(0, io.SEEK_END)
    size = fp.tell()
    tail_len = min(size, _EOCD.size + _MAX_COMMENT)
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        raise zipfile.BadZipFile("File is not a zip file")
    _, _, _, _, n_total, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    eocd_pos = size - tail_len + at
    before = eocd_pos
    if (n_total == 0xFFFF or cd_size == _NEED_64 or cd_offset == _NEED_64) and eocd_pos >= _LOCATOR64.size:
        fp.seek(eocd_pos - _LOCATOR64.size)
        loc = fp.read(_LOCATOR64.size)
        if loc[:4] == b"PK\x06\x07":
            fp.seek(eocd_pos - _LOCATOR64.size - _EOCD64.size)
            rec = fp.read(_EOCD64.size)
            if len(rec) != _EOCD64.size or rec[:4] != b"PK\x06\x06":
                raise zipfile.BadZipFile("bad ZIP64 end of central directory")
            n_total, cd_size, cd_offset = _EOCD64.unpack(rec)[7:10]
            before = eocd_pos - _LOCATOR64.size - _EOCD64.size
    concat = before - cd_size - cd_offset
    if concat < 0:
        raise zipfile.BadZipFile("bad ZIP directory offset")
    return cd_offset, cd_size, concat, n_total


def _zip64_sizes(info: zipfile.ZipInfo) -> None:
    """Take sizes and offset from the ZIP64 extra field where the record says 0xFFFFFFFF."""
    extra, pos = info.extra, 0
    while pos + 4 <= len(extra):
        tag, n = struct.unpack_from("<2H", extra, pos)
        if tag == 1:
            values = iter(struct.unpack_from(f"<{n // 8}Q", extra, pos + 4))
            try:
                if info.file_size == _NEED_64:
                    info.file_size = next(values)
                if info.compress_size == _NEED_64:
                    info.compress_size = next(values)
                if info.header_offset == _NEED_64:
                    info.header_offset = next(values)
            except StopIteration:
                raise zipfile.BadZipFile("corrupt ZIP64 extra field") from None
            return
        pos += 4 + n
