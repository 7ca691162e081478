"""What an import did: counts of added, skipped and failed objects, with messages."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

_LINE = re.compile(r"^(.*):(\d+)$")


class ImportFailed(RuntimeError):
    """The import stopped and wrote nothing (bad source, `strict` problem, database error)."""


@dataclass
class ImportReport:
    """Counts and messages of one `import_sources` call.

    `failed_messages` name the file and row of every problem; `notes` are remarks that need no
    action (ignored files, extra images of EcoTaxa objects) and warnings (questionable rows that
    were imported). `entries` holds all of them as (kind, where, message), kind "problem",
    "warning" or "note", for `write_tsv`.
    """

    sources: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    added: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    failed_messages: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    import_id: int | None = None
    strict: bool = False
    extra: dict = field(default_factory=dict)
    entries: list[tuple[str, str, str]] = field(default_factory=list)
    # text -> what is recorded and shown instead (an upload's server path -> the name its user gave)
    aliases: dict[str, str] = field(default_factory=dict)

    def shown(self, text: str) -> str:
        """Return `text` with every alias replaced."""
        for old, new in self.aliases.items():
            text = text.replace(old, new)
        return text

    def fail(self, where: str, message: str) -> None:
        """Record one bad row; in strict mode stop the whole import."""
        text = f"{where}: {message}"
        if self.strict:
            text = text.removesuffix("; row skipped")  # nothing is skipped: everything stops
            raise ImportFailed(f"{text} (--strict: nothing was imported)")
        self.failed += 1
        self.failed_messages.append(text)
        self.entries.append(("problem", where, message))

    def warn(self, where: str, message: str) -> None:
        """Record a questionable row that is still imported; in strict mode stop the import."""
        text = f"{where}: {message}"
        if self.strict:
            raise ImportFailed(f"{text} (--strict: nothing was imported)")
        self.notes.append(text)
        self.entries.append(("warning", where, message))

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.entries.append(("note", "", message))

    def write_tsv(self, path: str | Path) -> None:
        """Write every problem, warning and note as a TSV: kind, file, line, message."""
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(["kind", "file", "line", "message"])
            for kind, where, message in self.entries:
                m = _LINE.match(where)
                w.writerow([kind, *(m.groups() if m else (where, "")), message])

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def nothing_imported(self) -> bool:
        """True when no object was added, updated or found already there, and no tree was read."""
        return not (self.added or self.updated or self.skipped or self.extra.get("trees"))

    def to_dict(self, max_messages: int = 1000) -> dict:
        shown = self.shown
        return {
            "sources": [shown(s) for s in self.sources],
            "formats": {shown(s): f for s, f in self.formats.items()},
            "added": self.added,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.failed,
            "failed_messages": [shown(m) for m in self.failed_messages[:max_messages]],
            "notes": [shown(m) for m in self.notes[:max_messages]],
            **self.extra,
        }

    def summary(self, max_messages: int = 10) -> str:
        """Render the counts and the first messages as text."""
        fmts = ", ".join(f"{src} ({fmt})" for src, fmt in self.formats.items())
        run = f" (import #{self.import_id})" if self.import_id else ""
        lines = [f"Imported from {fmts}{run}" if fmts else "Imported nothing",
                 f"  added {self.added}, " + (f"updated {self.updated}, " if self.updated else "")
                 + f"skipped {self.skipped} (already in the project), failed {self.failed}"]
        for title, msgs in (("Problems (skipped)", self.failed_messages), ("Notes", self.notes)):
            if msgs:
                lines.append(f"{title}:")
                lines += [f"  {m}" for m in msgs[:max_messages]]
                if len(msgs) > max_messages:
                    lines.append(f"  ... and {len(msgs) - max_messages} more")
        return "\n".join(lines)
