"""Import a folder or ZIP with `index.csv` (columns object_id,path): the original MorphoCluster format.

`path` is relative to the folder holding index.csv. Further columns are kept in Object.meta.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .batch import Batch, Candidate
from .unpack import safe_member_name


def collect(root: Path, batch: Batch, prefix: str, where_root: str) -> int:
    """Add every row of root/index.csv to the batch; return how many rows were read."""
    report = batch.report
    index = root if root.is_file() else root / "index.csv"
    base = index.parent
    where = f"{where_root}/index.csv" if not root.is_file() else where_root
    try:
        text = index.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        report.fail(where, "index.csv not found")
        return 0
    except UnicodeDecodeError as exc:
        report.fail(where, f"unreadable encoding, expected UTF-8 ({exc.reason} at byte {exc.start}); file skipped")
        return 0
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, r) for r in reader]
    except csv.Error as exc:
        report.fail(f"{where}:{reader.line_num}", f"malformed CSV ({exc}); file skipped")
        return 0
    rows = [(n, r) for n, r in rows if any(x.strip() for x in r)]
    if not rows:
        report.fail(where, "empty index.csv (no header row); file skipped")
        return 0
    header = [h.strip() for h in rows[0][1]]
    if "object_id" not in header or "path" not in header:
        found = ",".join(header)
        hint = next((f"; the columns seem separated by {name}, but index.csv needs commas"
                     for sep, name in ((";", "';'"), ("\t", "tabs")) if sep in found), "")
        report.fail(f"{where}:1", f"header must name object_id and path, found {found!r}{hint}; "
                                  "file skipped")
        return 0
    i_id, i_path = header.index("object_id"), header.index("path")
    extra = [(i, h) for i, h in enumerate(header) if i not in (i_id, i_path) and h]
    n = 0
    for line, r in rows[1:]:
        at = f"{where}:{line}"
        if len(r) > len(header) and any(x.strip() for x in r[len(header):]):
            report.fail(at, f"row has {len(r)} fields but the header has {len(header)}; row skipped")
            continue
        r = r + [""] * (len(header) - len(r))
        oid, img = r[i_id].strip(), r[i_path].strip().replace("\\", "/")
        rel = safe_member_name(img) if img else None
        if rel is None:
            report.fail(at, f"path {img!r} is empty or points outside the source folder; row skipped")
            continue
        meta = {h: r[i] for i, h in extra if r[i] != ""} or None
        batch.add(Candidate(object_id=oid, src=base / rel, rel=f"{prefix}/{rel}", where=at, meta=meta,
                            image_name=img))
        n += 1
    return n
