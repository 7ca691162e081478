"""Tables read a line at a time: lines of a binary file, fields of a line, rows fitted to a header.

A row is one line of the file: a field quoted the CSV way is unquoted, but a quote that does not
pair up on its line never makes a field run on to the next line (EcoTaxa tables, index.csv).
"""

from __future__ import annotations

import csv


def byte_lines(fh):
    """Yield (line number, bytes) for every line of a binary file (ends \\n, \\r\\n or \\r)."""
    n = 0
    for raw in fh:
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        for part in raw.split(b"\r") if b"\r" in raw else (raw,):
            n += 1
            yield n, part


def text_of(raw: bytes) -> tuple[str, bool]:
    """Decode one line: UTF-8, else latin-1; return (text, whether it was UTF-8)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("latin-1"), False


def split_line(line: str, delimiter: str = "\t") -> tuple[list[str], bool]:
    """Split one line into fields; return (fields, False) when its quotes do not pair up.

    Fields quoted the CSV way are unquoted; on a line whose quotes do not pair up, every quote
    is kept as a character (no field ever runs on to the next line).
    """
    if '"' not in line:
        return line.split(delimiter), True
    try:
        return next(csv.reader([line], delimiter=delimiter, strict=True)), True
    except (csv.Error, StopIteration):
        return line.split(delimiter), False


def fit_row(fields: list[str], names: list[str], filled: int, at: str, report) -> list[str] | None:
    """Return the row with as many fields as the header, or None (reported) if it cannot be.

    A shorter row is kept (with a warning) only when the columns it lacks are empty in every
    full row (`filled`: the last column with a value there); otherwise a field may be missing
    anywhere and every value after it would land in the wrong column.
    """
    n, width = len(fields), len(names)
    if n > width:
        if any(x.strip() for x in fields[width:]):
            report.fail(at, f"row has {n} fields but the header has {width}; row skipped")
            return None
        return fields[:width]
    if n < width:
        lacking = ", ".join(names[n:n + 3]) + (", ..." if width - n > 3 else "")
        if filled >= n:
            report.fail(at, f"row has {n} fields but the header has {width}: a field is missing "
                            "and the values after it would be in the wrong columns; row skipped")
            return None
        report.warn(at, f"row has {n} fields but the header has {width}; its last {width - n} "
                        f"taken as empty, as they are in the other rows ({lacking})")
        fields = fields + [""] * (width - n)
    return fields
