"""Import EcoTaxa tables: ecotaxa*.tsv/.txt anywhere in a folder or ZIP (also ZIPs inside).

Each table has a header row and optionally a second row of `[t]`/`[f]` (or `[n]`) type
markers (a row where most fields look like markers; typos such as `[f` or `t` and other
markers are reported with their column); it is tab-separated, UTF-8 (with or without BOM; a
line that is not UTF-8 is read as latin-1 with a warning) or wholly latin-1. A row is one line
of the file: a field quoted the CSV way ("a\tb", as EcoTaxa exports write) is unquoted, but a
quote that does not pair up on its line stays a character (with a warning), so it never
swallows the rows after it. `img_file_name` is relative to the table. Every `object_*`,
`sample_*`, `acq_*` and `process_*` value that is not empty is kept in `Object.meta` (as text,
in column order, under the column name as the table spells it); the column order and types are
stored once per import (ImportRun.report and Meta "ecotaxa_columns") so an export can reproduce
them. `object_annotation_category`/`_status` become `imported_label`/`_status`.

Checks (each reported with file and line): a column named twice refuses the table; a row
longer than the header is skipped, a shorter one too unless the columns it lacks are empty in
every full row (EcoTaxa writers drop trailing empty fields): then it is kept with a warning; a
value that is not a number in an `[f]` column, or an impossible object_date/_time (YYYYMMDD,
HHMMSS), is left out of the metadata with a warning; a status without a category is ignored,
in the metadata too.

A table is read twice, streamed: `read_table` for its header, types, shape and the ids found on
several rows (counted on disk, in the import's scratch table), `rows` for the objects; each
object is added as soon as its last row is read, so only objects on several rows wait in memory.

An object with several images (rows sharing an object_id with different `img_rank`) is shown
by its lowest-ranked image; the others are copied too and listed, in rank order, in
`meta["_extra_images"]` ({"rank", "path", "file"}), so that the EcoTaxa export writes them
back. A missing or unreadable extra image is reported (file and row) and left out; the object
is imported with its other images.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .batch import Batch, Candidate, ExtraImage
from .report import ImportFailed
from .tables import byte_lines, fit_row, split_line, text_of
from .unpack import safe_member_name, unpack_zip

META_PREFIXES = ("object_", "sample_", "acq_", "process_")
STATUSES = {"predicted": "predicted", "dubious": "dubious", "validated": "validated",
            "p": "predicted", "d": "dubious", "v": "validated"}
TYPES = ("t", "f", "n")  # text, number; [n] (number) is found in older tables
TYPE_RE = re.compile(r"^\[?([a-z])\]?$", re.IGNORECASE)  # [t], [f]; also typos like [f or t
MAX_ZIP_DEPTH = 3
DATES, TIMES = ("object_date", "object_annotation_date"), ("object_time", "object_annotation_time")


def _is_table(name: str) -> bool:
    from . import is_ecotaxa_tsv

    return is_ecotaxa_tsv(name)


def find_tables(root: Path, batch: Batch, display: str, depth: int = 0):
    """Yield (table path, search root, display root) for every table, unpacking nested ZIPs."""
    if root.is_file():
        yield root, root.parent, display.rsplit("/", 1)[0] if "/" in display else "."
        return
    tables, zips = [], []  # only these are kept, not every image beside them
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fn in filenames:
            if fn.startswith("."):
                continue
            if _is_table(fn):
                tables.append(Path(dirpath, fn))
            elif fn.lower().endswith(".zip") and depth < MAX_ZIP_DEPTH:
                zips.append(Path(dirpath, fn))
    for p in sorted(tables):
        yield p, root, display
    for p in sorted(zips):
        rel = p.relative_to(root).as_posix()
        try:
            inner = unpack_zip(p, batch.scratch("nested"), batch.report)
        except ImportFailed as exc:
            batch.report.fail(f"{display}/{rel}", f"not a readable ZIP file ({exc.__cause__}); "
                                                 "ZIP skipped")
            continue
        yield from find_tables(inner, batch, f"{display}/{rel}", depth + 1)


@dataclass
class Table:
    """What the first pass over a table found (the rows are read again by `rows`)."""

    path: Path
    where: str
    names: list[str]  # as the table spells them
    header: list[str]  # the same in lower case
    types: list[str]
    filled: int  # the last column with a value in some full row (see fit_row)
    mixed: bool  # UTF-8 with some latin-1 lines (each warned as it is read)
    skip: tuple[int, ...]  # the header and type rows' line numbers
    multi: dict[str, int]  # object id -> number of rows, for ids on several rows


def read_table(path: Path, where: str, report, scratch) -> Table | None:
    """Read a table once, streamed, for its header, types and shape; None if it cannot be used.

    Each line is UTF-8 or else latin-1 (a file without any multi-byte UTF-8 character but with
    other non-ASCII bytes is wholly latin-1, as older EcoTaxa and UVP exports are: one note).
    """
    with open(path, "rb") as fh:
        head = fh.read(65536)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
            report.fail(where, "unreadable encoding (UTF-16 or binary data); save the table as UTF-8; "
                               "file skipped")
            return None
        fh.seek(3 if head.startswith(b"\xef\xbb\xbf") else 0)
        names = types = None
        skip, filled, n_body, any_utf8, any_bad = [], -1, 0, False, False
        ids = []
        scratch.ids_start()
        for n, raw in byte_lines(fh):
            line, utf8 = text_of(raw)
            any_bad, any_utf8 = any_bad or not utf8, any_utf8 or (utf8 and not raw.isascii())
            fields = split_line(line)[0]
            if not any(x.strip() for x in fields):
                continue
            if names is None:
                names, skip = [h.strip() for h in fields], [n]
                header = [h.lower() for h in names]
                if not _good_header(names, header, f"{where}:{n}", report):
                    return None
                i_id = header.index("object_id")
                continue
            if types is None:
                types = [""] * len(header)
                if _is_type_row(fields):
                    types = _read_types(header, (n, fields), where, report)
                    skip.append(n)
                    continue
            n_body += 1
            if len(fields) >= len(header):
                filled = max([filled] + [i for i, x in enumerate(fields[:len(header)]) if x.strip()])
            ids.append(fields[i_id].strip() if i_id < len(fields) else "")
            if len(ids) >= 10000:
                scratch.ids_add(ids)
                ids = []
    if names is None:
        report.fail(where, "empty EcoTaxa table (no header row); file skipped")
        return None
    if not n_body:
        report.fail(where, "no object rows below the header and type rows; file skipped")
        return None
    if any_bad and not any_utf8:
        report.note(f"{where}: not UTF-8; read as latin-1")
    scratch.ids_add(ids)
    return Table(path, where, names, header, types, filled, any_bad and any_utf8, tuple(skip),
                 scratch.ids_multi())


def _good_header(names, header, at, report) -> bool:
    """Report (and return False for) a column named twice or a required column missing."""
    first: dict[str, int] = {}
    for i, h in enumerate(header):
        if h and h in first:
            report.fail(at, f"column {names[i]!r} appears twice in the header "
                        f"(columns {first[h] + 1} and {i + 1}); file skipped")
            return False
        first.setdefault(h, i)
    for col in ("object_id", "img_file_name"):
        if col not in header:
            report.fail(at.rsplit(":", 1)[0], f"no {col} column in the header; file skipped")
            return False
    return True


def rows(table: Table, report):
    """Yield (line, fields) of the table's object rows, read again, warning as they come."""
    with open(table.path, "rb") as fh:
        if fh.read(3) != b"\xef\xbb\xbf":
            fh.seek(0)
        for n, raw in byte_lines(fh):
            line, utf8 = text_of(raw)
            if table.mixed and not utf8:
                report.warn(f"{table.where}:{n}", "line is not valid UTF-8 (unlike the rest of the "
                                                  "file); read as latin-1")
            fields, paired = split_line(line)
            if not any(x.strip() for x in fields):
                continue
            if not paired:
                report.warn(f"{table.where}:{n}", 'a quote (") that does not pair up on this line; '
                                                  "read as a character, not as CSV quoting")
            if n not in table.skip:
                yield n, fields


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
    t = read_table(table, where, report, batch.scratch_db)
    if t is None:
        return 0
    names, header = t.names, t.header
    batch.add_ecotaxa_columns([(n, typ) for n, typ in zip(names, t.types) if n])
    col = {h: i for i, h in enumerate(header)}
    table_dir = posixpath.dirname(table_rel)
    emit = _Emitter(batch, t, col, search_root, prefix)
    # an object on several rows (one per image) waits here until its last row is read
    pending: dict[str, dict] = {}  # object_id -> {"rank", "line", "img", "fields", "extra", "rows"}
    n = 0
    for line, fields in rows(t, report):
        at = f"{where}:{line}"
        # the id as the first pass read it, before the row is fitted (or refused)
        oid = fields[col["object_id"]].strip() if col["object_id"] < len(fields) else ""
        fields = fit_row(fields, names, t.filled, at, report)
        if oid in t.multi:
            t.multi[oid] -= 1  # rows of it still to come
        if fields is None:
            pass
        elif not (img := fields[col["img_file_name"]].strip()):
            report.fail(at, f"object {oid!r} has no img_file_name; row skipped")
        elif (rank := _rank(fields, col, at, report)) is None:
            pass
        elif (rel := safe_member_name(posixpath.join(table_dir, img.replace("\\", "/")))) is None:
            report.fail(at, f"img_file_name {img!r} points outside the source folder; row skipped")
        elif oid not in t.multi:
            emit({"rank": rank, "line": line, "img": img, "rel": rel, "fields": fields, "extra": []}, oid)
            n += 1
        elif oid not in pending:
            pending[oid] = {"rank": rank, "line": line, "img": img, "rel": rel, "fields": fields, "extra": []}
            n += 1
        else:
            _merge_row(pending[oid], oid, rank, img, rel, line, at, report)
        if oid in pending and t.multi[oid] == 0:
            emit(pending.pop(oid), oid)
    for oid, o in pending.items():
        emit(o, oid)
    if emit.n_extra:
        report.note(f"{where}: {emit.n_extra} objects have several images (img_rank); each is shown by its "
                    "lowest-ranked one, the others are kept with it and exported with it")
    return n


def _rank(fields, col, at, report) -> int | None:
    rank_text = fields[col["img_rank"]].strip() if "img_rank" in col else ""
    try:
        return int(float(rank_text)) if rank_text else 0
    except ValueError:
        report.fail(at, f"img_rank {rank_text!r} is not a number; row skipped")
        return None


def _merge_row(prev: dict, oid, rank, img, rel, line, at, report) -> None:
    """Add a further row of an object: another image of it, or a duplicate (reported)."""
    if prev["rank"] == rank:
        report.fail(at, f"duplicate object id {oid!r} (first at line {prev['line']}); row skipped")
    elif any(rank == r for r, *_ in prev["extra"]):
        report.fail(at, f"object {oid!r} has two images of img_rank {rank}; row skipped")
    elif rank < prev["rank"]:
        prev["extra"].append((prev["rank"], prev["img"], prev["rel"], prev["line"]))
        prev.update(rank=rank, img=img, rel=rel, line=line)
    else:
        prev["extra"].append((rank, img, rel, line))


class _Emitter:
    """Turn one object's rows into a Candidate (label, status, metadata) and add it."""

    def __init__(self, batch: Batch, t: Table, col: dict, search_root: Path, prefix: str):
        self.batch, self.t, self.col, self.prefix = batch, t, col, prefix
        self.root = os.fspath(search_root)
        self.keep = [(i, t.names[i], t.types[i]) for i, h in enumerate(t.header) if h.startswith(META_PREFIXES)]
        self.n_extra = 0

    def __call__(self, o: dict, oid: str) -> None:
        report, col, names, header = self.batch.report, self.col, self.t.names, self.t.header
        at = f"{self.t.where}:{o['line']}"
        fields = o["fields"]
        label = fields[col["object_annotation_category"]].strip() if "object_annotation_category" in col else ""
        status_text = fields[col["object_annotation_status"]].strip() if "object_annotation_status" in col else ""
        status = STATUSES.get(status_text.lower()) if status_text else None
        if status_text and status is None:
            report.fail(at, f"object {oid!r}: unknown object_annotation_status {status_text!r} "
                            "(expected predicted, dubious or validated); row skipped")
            return
        if label and not status:
            report.warn(at, f"object {oid!r}: category {label!r} without object_annotation_status; "
                            "imported as predicted")
            status = "predicted"
        elif status and not label:
            report.warn(at, f"object {oid!r}: object_annotation_status {status_text!r} without a category; "
                            "status ignored")
            status = None
        meta = {}
        for i, name, typ in self.keep:
            problem = bad_value(header[i], typ, fields[i].strip()) if fields[i] != "" else ""
            if problem:
                report.warn(at, f"column {name!r} ({i + 1}): {fields[i]!r} {problem}; value left out")
            elif fields[i] != "":
                meta[name] = fields[i]
        if status_text and status is None:  # ignored: not kept as metadata either
            meta.pop(names[col["object_annotation_status"]], None)
        meta[names[col["object_id"]]] = oid
        extra = [ExtraImage(rank, os.path.join(self.root, rel), f"{self.prefix}/{rel}",
                            f"{self.t.where}:{line}", img) for rank, img, rel, line in sorted(o["extra"])]
        self.n_extra += bool(extra)
        self.batch.add(Candidate(object_id=oid, src=os.path.join(self.root, o["rel"]),
                                 rel=f"{self.prefix}/{o['rel']}", where=at, label=label or None,
                                 status=status, meta=meta, image_name=o["img"], extra=extra))


def bad_value(column: str, typ: str, value: str) -> str:
    """Return what is wrong with a value of a number, date or time column, or ''."""
    if typ in ("f", "n"):
        try:
            float(value)
        except ValueError:
            return "is not a number (the column is [f])"
    if column in DATES:
        try:
            if not (len(value) == 8 and value.isdigit()):
                raise ValueError
            date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            return "is not a date (YYYYMMDD)"
    if column in TIMES:
        whole = value.split(".", 1)[0]
        digits = whole.zfill(6)
        if not (whole.isdigit() and len(digits) == 6 and int(digits[:2]) < 24
                and int(digits[2:4]) < 60 and int(digits[4:]) < 60):
            return "is not a time (HHMMSS)"
    return ""
