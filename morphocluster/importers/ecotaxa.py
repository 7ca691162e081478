"""Import EcoTaxa tables: ecotaxa*.tsv/.txt anywhere in a folder or ZIP (also ZIPs inside).

Each table has a header row and optionally a second row of `[t]`/`[f]` (or `[n]`) type
markers (a row where most fields look like markers; typos such as `[f` or `t` and other
markers are reported with their column); it is tab-separated with optional quotes, UTF-8
(with or without BOM; a line that is not UTF-8 is read as latin-1 with a warning) or wholly
latin-1. `img_file_name` is relative to the table. Every `object_*`, `sample_*`, `acq_*` and
`process_*` value that is not empty is kept in `Object.meta` (as text, in column order); the
column order and types are stored once per import (ImportRun.report and Meta
"ecotaxa_columns") so an export can reproduce them. `object_annotation_category`/`_status`
become `imported_label`/`_status`.

An object with several images (rows sharing an object_id with different `img_rank`) is shown
by its lowest-ranked image; the others are copied too and listed, in rank order, in
`meta["_extra_images"]` ({"rank", "path", "file"}), so that the EcoTaxa export writes them
back. A missing or unreadable extra image is reported (file and row) and left out; the object
is imported with its other images.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from pathlib import Path

from .batch import Batch, Candidate, ExtraImage
from .report import ImportFailed
from .unpack import safe_member_name, unpack_zip

META_PREFIXES = ("object_", "sample_", "acq_", "process_")
STATUSES = {"predicted": "predicted", "dubious": "dubious", "validated": "validated",
            "p": "predicted", "d": "dubious", "v": "validated"}
TYPES = ("t", "f", "n")  # text, number; [n] (number) is found in older tables
TYPE_RE = re.compile(r"^\[?([a-z])\]?$", re.IGNORECASE)  # [t], [f]; also typos like [f or t
MAX_ZIP_DEPTH = 3


def _is_table(name: str) -> bool:
    from . import is_ecotaxa_tsv

    return is_ecotaxa_tsv(name)


def find_tables(root: Path, batch: Batch, display: str, depth: int = 0):
    """Yield (table path, search root, display root) for every table, unpacking nested ZIPs."""
    if root.is_file():
        yield root, root.parent, display.rsplit("/", 1)[0] if "/" in display else "."
        return
    paths = sorted(p for p in root.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    for p in paths:
        if _is_table(p.name):
            yield p, root, display
    for p in paths:
        if p.suffix.lower() == ".zip" and depth < MAX_ZIP_DEPTH:
            rel = p.relative_to(root).as_posix()
            try:
                inner = unpack_zip(p, batch.scratch("nested"), batch.report)
            except ImportFailed as exc:
                batch.report.fail(f"{display}/{rel}", f"not a readable ZIP file ({exc.__cause__}); "
                                                     "ZIP skipped")
                continue
            yield from find_tables(inner, batch, f"{display}/{rel}", depth + 1)


def _decode(raw: bytes, where: str, report) -> str:
    """Decode UTF-8 line by line; a line that is not UTF-8 is read as latin-1 (with a warning).

    A file without any multi-byte UTF-8 character but with non-ASCII bytes is taken as wholly
    latin-1 (one note), as older EcoTaxa and UVP exports are.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines = raw.splitlines(keepends=True)
    decoded, bad = [], []
    any_utf8 = False
    for n, line in enumerate(lines, 1):
        try:
            decoded.append(line.decode("utf-8"))
            any_utf8 = any_utf8 or not line.isascii()
        except UnicodeDecodeError:
            decoded.append(line.decode("latin-1"))
            bad.append(n)
    if not any_utf8:
        report.note(f"{where}: not UTF-8; read as latin-1")
        return "".join(decoded)
    for n in bad:
        report.warn(f"{where}:{n}", "line is not valid UTF-8 (unlike the rest of the file); read as latin-1")
    return "".join(decoded)


def read_table(path: Path, where: str, report):
    """Return (header, types, rows as (line, fields)) or None if the file cannot be used."""
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:65536]:
        report.fail(where, "unreadable encoding (UTF-16 or binary data); save the table as UTF-8; "
                           "file skipped")
        return None
    text = _decode(raw, where, report)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quotechar='"')
    rows = []
    try:
        for fields in reader:
            rows.append((reader.line_num, fields))
    except csv.Error as exc:
        report.fail(f"{where}:{reader.line_num}", f"malformed table ({exc}); file skipped")
        return None
    rows = [(n, f) for n, f in rows if any(x.strip() for x in f)]
    if not rows:
        report.fail(where, "empty EcoTaxa table (no header row); file skipped")
        return None
    header = [h.strip().lower() for h in rows[0][1]]
    types = [""] * len(header)
    body = rows[1:]
    if body and _is_type_row(body[0][1]):
        types = _read_types(header, body[0], where, report)
        body = body[1:]
    for col in ("object_id", "img_file_name"):
        if col not in header:
            report.fail(where, f"no {col} column in the header; file skipped")
            return None
    return header, types, body


def _is_type_row(fields) -> bool:
    """True if most non-empty fields look like `[t]`/`[f]` markers (typos such as `[f` too)."""
    filled = [x.strip() for x in fields if x.strip()]
    return bool(filled) and sum(bool(TYPE_RE.match(x)) for x in filled) * 2 > len(filled)


def _read_types(header, type_row, where, report) -> list[str]:
    """Return the type letter of each column; report markers other than [t], [f] and [n]."""
    line, fields = type_row
    types = []
    for name, x in zip(header, fields + [""] * (len(header) - len(fields))):
        x = x.strip()
        m = TYPE_RE.match(x)
        letter = m.group(1).lower() if m else ""
        letter = letter if letter in TYPES else ""
        if x and x.lower() not in ("[t]", "[f]", "[n]"):
            report.warn(f"{where}:{line}", f"column {name!r}: type marker {x!r} is not [t] or [f]; "
                        + (f"read as [{letter}]" if letter else "column left untyped"))
        types.append(letter)
    return types


def collect(root: Path, batch: Batch, prefix: str, where_root: str) -> int:
    """Add the objects of every EcoTaxa table below `root` to the batch; return how many."""
    n = 0
    found_table = False
    for table, search_root, display in find_tables(root, batch, where_root):
        found_table = True
        n += _collect_table(table, search_root, display, batch, prefix)
    if not found_table:
        batch.report.fail(where_root, "no EcoTaxa table (ecotaxa*.tsv or ecotaxa*.txt) found")
    return n


def _collect_table(table: Path, search_root: Path, display: str, batch: Batch, prefix: str) -> int:
    report = batch.report
    table_rel = table.relative_to(search_root).as_posix()
    where = f"{display}/{table_rel}"
    parsed = read_table(table, where, report)
    if parsed is None:
        return 0
    header, types, body = parsed
    batch.add_ecotaxa_columns([(h, t) for h, t in zip(header, types) if h])
    col = {h: i for i, h in enumerate(header)}
    keep = [(i, h) for i, h in enumerate(header) if h.startswith(META_PREFIXES)]
    table_dir = posixpath.dirname(table_rel)
    objects: dict[str, dict] = {}  # object_id -> {"rank", "line", "img", "fields", "extra"}
    for line, fields in body:
        at = f"{where}:{line}"
        if len(fields) > len(header):
            if any(x.strip() for x in fields[len(header):]):
                report.fail(at, f"row has {len(fields)} fields but the header has {len(header)}; row skipped")
                continue
            fields = fields[:len(header)]
        fields = fields + [""] * (len(header) - len(fields))
        oid = fields[col["object_id"]].strip()
        img = fields[col["img_file_name"]].strip()
        if not img:
            report.fail(at, f"object {oid!r} has no img_file_name; row skipped")
            continue
        rank_text = fields[col["img_rank"]].strip() if "img_rank" in col else ""
        try:
            rank = int(float(rank_text)) if rank_text else 0
        except ValueError:
            report.fail(at, f"img_rank {rank_text!r} is not a number; row skipped")
            continue
        rel = safe_member_name(posixpath.join(table_dir, img.replace("\\", "/")))
        if rel is None:
            report.fail(at, f"img_file_name {img!r} points outside the source folder; row skipped")
            continue
        prev = objects.get(oid)
        if prev is not None and prev["rank"] == rank:
            report.fail(at, f"duplicate object id {oid!r} (first at line {prev['line']}); row skipped")
            continue
        if prev is not None:
            if any(rank == r for r, *_ in prev["extra"]):
                report.fail(at, f"object {oid!r} has two images of img_rank {rank}; row skipped")
            elif rank < prev["rank"]:
                prev["extra"].append((prev["rank"], prev["img"], prev["rel"], prev["line"]))
                prev.update(rank=rank, img=img, rel=rel, line=line)
            else:
                prev["extra"].append((rank, img, rel, line))
            continue
        objects[oid] = {"rank": rank, "line": line, "img": img, "rel": rel, "fields": fields, "extra": []}

    n_extra = 0
    for oid, o in objects.items():
        at = f"{where}:{o['line']}"
        fields = o["fields"]
        label = fields[col["object_annotation_category"]].strip() if "object_annotation_category" in col else ""
        status_text = fields[col["object_annotation_status"]].strip() if "object_annotation_status" in col else ""
        status = STATUSES.get(status_text.lower()) if status_text else None
        if status_text and status is None:
            report.fail(at, f"object {oid!r}: unknown object_annotation_status {status_text!r} "
                            "(expected predicted, dubious or validated); row skipped")
            continue
        if label and not status:
            report.warn(at, f"object {oid!r}: category {label!r} without object_annotation_status; "
                            "imported as predicted")
            status = "predicted"
        elif status and not label:
            report.warn(at, f"object {oid!r}: object_annotation_status {status_text!r} without a category; "
                            "status ignored")
            status = None
        meta = {h: fields[i] for i, h in keep if fields[i] != ""}
        meta["object_id"] = oid
        extra = [ExtraImage(rank, search_root / rel, f"{prefix}/{rel}", f"{where}:{line}", img)
                 for rank, img, rel, line in sorted(o["extra"])]
        n_extra += bool(extra)
        batch.add(Candidate(object_id=oid, src=search_root / o["rel"], rel=f"{prefix}/{o['rel']}",
                            where=at, label=label or None, status=status, meta=meta,
                            image_name=o["img"], extra=extra))
    if n_extra:
        report.note(f"{where}: {n_extra} objects have several images (img_rank); each is shown by its "
                    "lowest-ranked one, the others are kept with it and exported with it")
    return len(objects)
