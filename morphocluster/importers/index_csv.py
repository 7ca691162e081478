"""Import a folder or ZIP with `index.csv` (columns object_id,path): the original MorphoCluster format.

`path` is relative to the folder holding index.csv. Further columns are kept in Object.meta.
A row is one line of the file (quoted the CSV way): a row whose quotes do not pair up on its line
is reported and skipped, and the rows after it are read as usual; so is a row with another number
of fields than the header (a shorter one is kept, with a warning, when the columns it lacks are
empty in every full row). A column named twice refuses the file.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

from .batch import Batch, Candidate
from .tables import byte_lines, fit_row, split_line
from .report import ImportReport
from .unpack import safe_member_name


def _check_utf8(path: Path) -> str | None:
    """Return why the file is not UTF-8 ("reason at byte N"), or None; read in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            held = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return f"{exc.reason} at byte {offset - held + exc.start}"
            if not chunk:
                return None
            offset += len(chunk)


def _lines(path: Path):
    """Yield (line number, text) of a UTF-8 file (BOM dropped), streamed."""
    with open(path, "rb") as fh:
        if fh.read(3) != b"\xef\xbb\xbf":
            fh.seek(0)
        for n, raw in byte_lines(fh):
            yield n, raw.decode("utf-8")


def _rows(path: Path, where: str, report):
    """Yield (line, fields) of the non-empty rows; a row whose quotes do not pair up is reported."""
    for line, x in _lines(path):
        fields, paired = split_line(x, ",")
        if not paired:
            report.fail(f"{where}:{line}", 'a quote (") that does not pair up on this line (a field '
                                           "cannot run on to the next line); row skipped")
        elif any(f.strip() for f in fields):
            yield line, fields


def collect(root: Path, batch: Batch, prefix: str, where_root: str) -> int:
    """Add every row of root/index.csv to the batch; return how many rows were read.

    The file is read twice, streamed: once for its header and shape, once for the rows.
    """
    report = batch.report
    index = root if root.is_file() else root / "index.csv"
    base = os.fspath(index.parent)
    where = f"{where_root}/index.csv" if not root.is_file() else where_root
    if not index.is_file():
        report.fail(where, "index.csv not found")
        return 0
    bad = _check_utf8(index)
    if bad:
        report.fail(where, f"unreadable encoding, expected UTF-8 ({bad}); file skipped")
        return 0
    header, header_line, filled = None, 0, -1
    quiet = ImportReport()  # the first pass reports nothing; the second reports each row
    for line, fields in _rows(index, where, quiet):
        if header is None:
            header, header_line = [h.strip() for h in fields], line
        elif len(fields) >= len(header):
            filled = max([filled] + [i for i, x in enumerate(fields[:len(header)]) if x.strip()])
    if header is None:
        _replay(quiet, report)
        report.fail(where, "empty index.csv (no header row); file skipped")
        return 0
    first: dict[str, int] = {}
    for i, h in enumerate(header):
        if h and h in first:
            _replay(quiet, report)
            report.fail(f"{where}:{header_line}", f"column {h!r} appears twice in the header (columns "
                                                  f"{first[h] + 1} and {i + 1}); file skipped")
            return 0
        first.setdefault(h, i)
    if "object_id" not in header or "path" not in header:
        _replay(quiet, report)
        found = ",".join(header)
        hint = next((f"; the columns seem separated by {name}, but index.csv needs commas"
                     for sep, name in ((";", "';'"), ("\t", "tabs")) if sep in found), "")
        report.fail(f"{where}:1", f"header must name object_id and path, found {found!r}{hint}; "
                                  "file skipped")
        return 0
    i_id, i_path = header.index("object_id"), header.index("path")
    extra = [(i, h) for i, h in enumerate(header) if i not in (i_id, i_path) and h]
    n = 0
    for line, r in _rows(index, where, report):
        if line == header_line:
            continue
        at = f"{where}:{line}"
        r = fit_row(r, header, filled, at, report)
        if r is None:
            continue
        oid, img = r[i_id].strip(), r[i_path].strip().replace("\\", "/")
        rel = safe_member_name(img) if img else None
        if rel is None:
            report.fail(at, f"path {img!r} is empty or points outside the source folder; row skipped")
            continue
        meta = {h: r[i] for i, h in extra if r[i] != ""} or None
        batch.add(Candidate(object_id=oid, src=os.path.join(base, rel), rel=f"{prefix}/{rel}", where=at,
                            meta=meta, image_name=img))
        n += 1
    return n


def _replay(quiet: ImportReport, report) -> None:
    """Report the rows the first pass refused (the file is skipped: no second pass)."""
    for _, where, message in quiet.entries:
        report.fail(where, message)
