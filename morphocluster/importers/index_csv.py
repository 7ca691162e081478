"""Import a folder or ZIP with `index.csv` (columns object_id,path): the original MorphoCluster format.

`path` is relative to the folder holding index.csv. Further columns are kept in Object.meta.
A row is one line of the file (quoted the CSV way): a row whose quotes do not pair up on its line
is reported and skipped, and the rows after it are read as usual; so is a row with another number
of fields than the header (a shorter one is kept, with a warning, when the columns it lacks are
empty in every full row). A column named twice refuses the file.
"""

from __future__ import annotations

from pathlib import Path

from .batch import Batch, Candidate
from .ecotaxa import fit_row, physical_lines, split_line
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
    rows = []
    for line, x in physical_lines(text):
        fields, paired = split_line(x, ",")
        if not paired:
            report.fail(f"{where}:{line}", 'a quote (") that does not pair up on this line (a field '
                                           "cannot run on to the next line); row skipped")
        elif any(f.strip() for f in fields):
            rows.append((line, fields))
    if not rows:
        report.fail(where, "empty index.csv (no header row); file skipped")
        return 0
    header = [h.strip() for h in rows[0][1]]
    first: dict[str, int] = {}
    for i, h in enumerate(header):
        if h and h in first:
            report.fail(f"{where}:{rows[0][0]}", f"column {h!r} appears twice in the header (columns "
                                                 f"{first[h] + 1} and {i + 1}); file skipped")
            return 0
        first.setdefault(h, i)
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
    filled = max((i for _, r in rows[1:] if len(r) >= len(header)
                  for i, x in enumerate(r[:len(header)]) if x.strip()), default=-1)
    for line, r in rows[1:]:
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
        batch.add(Candidate(object_id=oid, src=base / rel, rel=f"{prefix}/{rel}", where=at, meta=meta,
                            image_name=img))
        n += 1
    return n
