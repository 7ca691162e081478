"""Features computed elsewhere: HDF5 (original MorphoCluster layout) or CSV/TSV with an id column."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from .h5 import FeatureError

ID_COLUMNS = ("object_id", "id", "objid")


def _few(items, n=5) -> str:
    items = list(items)
    more = f" (and {len(items) - n} more)" if len(items) > n else ""
    return ", ".join(repr(str(i)) for i in items[:n]) + more


def read_h5(path: Path) -> tuple[list[str], np.ndarray]:
    import h5py

    try:
        h = h5py.File(path, "r")
    except OSError as exc:
        raise FeatureError(f"{path}: not a readable HDF5 file: {exc}") from exc
    with h:
        for key in ("object_id", "features"):
            if key not in h:
                raise FeatureError(f"{path}: no `{key}` dataset (expected `object_id` strings and "
                                   f"`features` (n, d) floats)")
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in h["object_id"][:]]
        X = np.asarray(h["features"][:], dtype=np.float32)
    if X.ndim != 2:
        raise FeatureError(f"{path}: `features` has shape {X.shape}, expected (n, d)")
    if X.shape[0] != len(ids):
        raise FeatureError(f"{path}: dimension mismatch: {len(ids)} object ids but {X.shape[0]} feature rows")
    return ids, X


def _utf8_lines(path: Path, f):
    """Yield the lines of the binary file `f` as text; a line that is not UTF-8 is an error."""
    for n, raw in enumerate(f, start=1):
        try:
            yield raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise FeatureError(f"{path}, line {n}: not UTF-8 text (byte {raw[exc.start]:#04x}); "
                               "save the file as UTF-8") from None


def read_table(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, "rb") as f:
        sample = f.read(65536)
        if sample.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in sample:
            raise FeatureError(f"{path}: UTF-16 or binary data, not a text table; save it as UTF-8")
        f.seek(0)
        text = sample.decode("utf-8", errors="replace")
        delim = "\t" if path.suffix.lower() in (".tsv", ".tab") or text.count("\t") > text.count(",") else ","
        rows = csv.reader(_utf8_lines(path, f), delimiter=delim)
        try:
            ids, X = _read_rows(path, rows)
        except csv.Error as exc:
            raise FeatureError(f"{path}, line {rows.line_num}: malformed table ({exc})") from None
    return ids, X


def _read_rows(path: Path, rows) -> tuple[list[str], np.ndarray]:
    header = next(rows, None)
    if not header:
        raise FeatureError(f"{path}: empty file")
    lower = [h.strip().lower() for h in header]
    id_cols = [i for i, h in enumerate(lower) if h in ID_COLUMNS]
    if not id_cols:
        hint = "; the columns seem separated by ';', use commas or tabs" if ";" in header[0] else ""
        raise FeatureError(f"{path}: no id column (one of {', '.join(ID_COLUMNS)}) in the header{hint}")
    if len(id_cols) > 1:
        raise FeatureError(f"{path}: several id columns ({', '.join(repr(header[i]) for i in id_cols)}); "
                           "keep only one, so that no id is taken for a feature")
    id_col = id_cols[0]
    d = len(header) - 1
    if d == 0:
        raise FeatureError(f"{path}: no feature columns; the header has only the id column {header[id_col]!r}")
    ids, vals = [], []
    for row in rows:
        lineno = rows.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise FeatureError(f"{path}, line {lineno}: dimension mismatch: {len(row) - 1} values, "
                               f"the header has {d}")
        ids.append(row[id_col].strip())
        try:
            vals.append([float(c) for i, c in enumerate(row) if i != id_col])
        except ValueError:
            bad = next(header[i] for i, c in enumerate(row) if i != id_col and not _is_float(c))
            raise FeatureError(f"{path}, line {lineno}, column {bad!r}: not a number") from None
    return ids, np.asarray(vals, dtype=np.float32).reshape(len(ids), d)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_external(path) -> tuple[list[str], np.ndarray]:
    """Return (ids, features) of an external feature file (.h5/.hdf5 or .csv/.tsv)."""
    path = Path(path)
    if not path.is_file():
        raise FeatureError(f"{path}: no such feature file")
    if path.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        return read_h5(path)
    return read_table(path)


def match_external(path, object_ids, dim: int | None = None) -> np.ndarray:
    """Return the external features of `path` in the order of `object_ids`.

    Raise FeatureError for duplicate ids in the file, ids the project does not know, project
    objects without a row, non-finite values, or a dimension other than `dim`.
    """
    ids, X = read_external(path)
    if dim is not None and X.shape[1] != dim:
        raise FeatureError(f"{path}: dimension mismatch: {X.shape[1]} features per object, expected {dim}")
    dup = [i for i, c in Counter(ids).items() if c > 1]
    if dup:
        raise FeatureError(f"{path}: duplicate object ids: {_few(dup)}")
    row = {i: r for r, i in enumerate(ids)}
    known = set(object_ids)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise FeatureError(f"{path}: {len(unknown)} ids are not objects of this project: {_few(unknown)}")
    missing = [i for i in object_ids if i not in row]
    if missing:
        raise FeatureError(f"{path}: {len(missing)} objects of this project have no features: {_few(missing)}")
    out = X[[row[i] for i in object_ids]]
    bad = ~np.isfinite(out).all(1)
    if bad.any():
        raise FeatureError(f"{path}: non-finite values for objects {_few(np.asarray(object_ids)[bad])}")
    return out
