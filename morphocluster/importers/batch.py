"""Collect candidate objects from all sources, check them, stage images, commit in one go.

Policy: every bad row is reported (file and row) and skipped; the good objects are committed
in ONE transaction. Images are copied to a staging folder under the project's cache/, moved
into images/ in one rename just before the database commit, and removed again if the commit
fails, so nothing already in the project is lost or half-written. With `strict`, the first
problem raises ImportFailed before anything is written.
"""

from __future__ import annotations

import os
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select, update

from ..images import ImageError, ImageLimits, check_image_bytes
from ..store import ImportRun, Meta, Object, utcnow
from .report import ImportFailed, ImportReport

MAX_ID_LEN = 255
ECOTAXA_META_KEY = "ecotaxa_columns"


@dataclass
class ExtraImage:
    """A further image of one object (EcoTaxa img_rank above the lowest)."""

    rank: int
    src: Path
    rel: str
    where: str
    image_name: str


@dataclass
class Candidate:
    """One object found in a source, not yet checked."""

    object_id: str
    src: Path  # image file on disk (the source folder or an unpacked ZIP)
    rel: str  # destination below this import's folder in images/, POSIX separators
    where: str  # "file:line" or "file" for messages
    label: str | None = None
    status: str | None = None
    meta: dict | None = None
    image_name: str = ""  # the image as the source names it, for messages
    extra: list[ExtraImage] = field(default_factory=list)

    def __post_init__(self):
        self.image_name = self.image_name or self.src.name


class Batch:
    """Everything one `import_sources` call will add, committed by `commit`."""

    def __init__(self, project, report: ImportReport, work: Path, update: bool = False,
                 limits: ImageLimits | None = None):
        self.project = project
        self.limits = limits or ImageLimits()
        # what `unpack_zip` refused (target path -> (where, why)): reported on the row naming it
        self.refused: dict[str, tuple[str, str]] = {}
        report.limits, report.refused = self.limits, self.refused
        self.update = update  # objects already stored take this source's labels and metadata
        self.updates: list[tuple[str, dict]] = []  # (object id, columns to change)
        self.report = report
        self.work = work
        # the images' folder; the process id tells a killed import's folder (`orphan_folders`)
        self.token = datetime.now().strftime("%Y%m%d-%H%M%S-") + f"{os.getpid()}-" + secrets.token_hex(3)
        self.stage = work / "stage"
        self.candidates: list[Candidate] = []
        self._n_scratch = 0
        self.ecotaxa_columns: dict[str, str] = {}  # name -> "t"|"f"|"" in first-seen order

    def scratch(self, kind: str) -> Path:
        """Return a new empty folder name under the work folder (for unpacked ZIPs)."""
        self._n_scratch += 1
        return self.work / kind / str(self._n_scratch)

    def add(self, cand: Candidate) -> None:
        if not cand.object_id:
            self.report.fail(cand.where, "empty object id; row skipped")
        elif len(cand.object_id) > MAX_ID_LEN:
            self.report.fail(cand.where, f"object id longer than {MAX_ID_LEN} characters; row skipped")
        else:
            self.candidates.append(cand)

    def add_ecotaxa_columns(self, columns: list[tuple[str, str]]) -> None:
        for name, typ in columns:
            self.ecotaxa_columns[name] = _merged_type(self.ecotaxa_columns.get(name), typ)

    # --- checking ---------------------------------------------------------------------------
    def _dedupe(self) -> list[Candidate]:
        first: dict[str, Candidate] = {}
        out = []
        for c in self.candidates:
            prev = first.get(c.object_id)
            if prev is not None:
                self.report.fail(c.where, f"duplicate object id {c.object_id!r} (first at {prev.where}); "
                                          "row skipped")
                continue
            first[c.object_id] = c
            out.append(c)
        return out

    def _existing(self, ids: list[str]) -> dict[str, tuple]:
        """Return object_id -> (path, imported_label, imported_status, meta) for ids already stored."""
        found: dict[str, tuple] = {}
        cols = (Object.object_id, Object.path, Object.imported_label, Object.imported_status, Object.meta)
        with self.project.session() as s:
            for i in range(0, len(ids), 500):
                for oid, *rest in s.execute(select(*cols).where(Object.object_id.in_(ids[i:i + 500]))):
                    found[oid] = tuple(rest)
        return found

    def _stage_one(self, cand: Candidate):
        """Read, decode and stage one image; return (width, height) or an error message."""
        limit = self.limits.max_file_size
        try:
            with open(cand.src, "rb") as fh:
                n_bytes = os.fstat(fh.fileno()).st_size
                data = fh.read(limit + 1) if n_bytes <= limit else b""  # never more than the limit
        except FileNotFoundError:
            if str(cand.src) in self.refused:
                return f"image {cand.image_name}: {self.refused[str(cand.src)][1]}"
            return f"image file {cand.image_name} not found"
        except OSError as exc:
            return f"cannot read image {cand.image_name} ({exc.strerror or exc})"
        try:
            self.limits.check_file_size(max(n_bytes, len(data)), cand.image_name)
            size = check_image_bytes(data, cand.image_name, self.limits)
        except ImageError as exc:
            return str(exc)
        dest = os.path.join(self._stage_str, cand.rel)
        folder = os.path.dirname(dest)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        with open(dest, "wb") as fh:
            fh.write(data)
        return size

    def _stage_chunk(self, chunk: list[Candidate]) -> list:
        return [self._stage_one(c) for c in chunk]

    def _same_content(self, cand: Candidate, stored_rel: str) -> bool | None:
        try:
            stored = self.project.image_path(stored_rel)
            if stored.stat().st_size != cand.src.stat().st_size:
                return False
            return stored.read_bytes() == cand.src.read_bytes()
        except OSError:
            return None

    # --- committing -------------------------------------------------------------------------
    def commit(self, progress: bool = True) -> ImportReport:
        """Check every candidate, stage the good ones and commit them in one transaction."""
        report = self.report
        named = {str(c.src) for c in self.candidates} | {str(e.src) for c in self.candidates for e in c.extra}
        for target, (where, why) in self.refused.items():
            if target not in named:
                report.fail(where, f"{why}; entry skipped")
        cands = self._dedupe()
        existing = self._existing([c.object_id for c in cands])
        todo = []
        n_no_image = n_relabelled = 0
        for c in cands:
            if c.object_id not in existing:
                todo.append(c)
                continue
            stored, label, status, meta = existing[c.object_id]
            same = self._same_content(c, stored) if c.src.exists() else True
            if same and self.update:
                change = _changes(c, label, status, meta)
                if change:
                    self.updates.append((c.object_id, change))
                else:
                    report.skipped += 1
                continue
            if not c.src.exists():
                n_no_image += 1
                report.skipped += 1
                continue
            if same:
                report.skipped += 1
                n_relabelled += (c.label, c.status) != (label, status)
            elif same is None:
                report.fail(c.where, f"object id {c.object_id!r} is already in the project, but its stored "
                                     f"image {stored} cannot be read to compare; row skipped")
            else:
                report.fail(c.where, f"object id {c.object_id!r} is already in the project with a different "
                                     "image; row skipped (rename the object or import into another project)")

        if n_relabelled:
            report.note(f"{n_relabelled} skipped objects have another imported label or status in this "
                        "source; the stored ones are kept (--update takes this source's)")
        if n_no_image:
            report.note(f"{n_no_image} objects already in the project have no image in this source; "
                        "skipped (their stored image and metadata are kept)")
        rows = []
        if todo:
            from tqdm import tqdm

            # several objects may share one image file (EcoTaxa): stage each file once
            first: dict[str, Candidate | ExtraImage] = {}
            for c in todo:
                first.setdefault(c.rel, c)
                for e in c.extra:
                    first.setdefault(e.rel, e)
            unique = list(first.values())
            self._stage_str, self._made = str(self.stage), set()
            chunks = [unique[i:i + 64] for i in range(0, len(unique), 64)]
            workers = max(1, min(4, os.cpu_count() or 1))
            staged = {}
            with ThreadPoolExecutor(workers) as pool, \
                    tqdm(total=len(unique), desc="import", unit="img", disable=not progress, leave=False) as bar:
                for chunk, results in zip(chunks, pool.map(self._stage_chunk, chunks)):
                    staged.update(zip((c.rel for c in chunk), results))
                    bar.update(len(chunk))
            for c in todo:
                res = staged[c.rel]
                if isinstance(res, str):
                    report.fail(c.where, f"{res}; row skipped")
                    continue
                rows.append({
                    "object_id": c.object_id, "path": f"{self.token}/{c.rel}",
                    "width": res[0], "height": res[1], "meta": self._with_extra(c, staged),
                    "imported_label": c.label, "imported_status": c.status,
                })
        self._write(rows)
        return report

    def _with_extra(self, c: Candidate, staged: dict) -> dict | None:
        """Return the candidate's metadata with its further images that were staged."""
        if not c.extra:
            return c.meta
        kept = []
        for e in c.extra:
            res = staged[e.rel]
            if isinstance(res, str):
                self.report.warn(e.where, f"{res}; this image of object {c.object_id!r} is left out "
                                          "(the object is imported with its other images)")
            else:
                kept.append({"rank": e.rank, "path": f"{self.token}/{e.rel}", "file": e.image_name})
        return {**(c.meta or {}), "_extra_images": kept} if kept else c.meta

    def _write(self, rows: list[dict]) -> None:
        report = self.report
        report.added = len(rows)
        report.updated = len(self.updates)
        if rows:
            report.extra["images_folder"] = self.token
        if self.ecotaxa_columns:
            report.extra[ECOTAXA_META_KEY] = [[n, t] for n, t in self.ecotaxa_columns.items()]
        final = self.project.images_dir / self.token
        moved = False
        try:
            with self.project.transaction() as s:
                run = ImportRun(source="\n".join(report.sources)[:10000],
                                format=",".join(sorted(set(report.formats.values())))[:32],
                                n_added=report.added, n_skipped=report.skipped, n_failed=report.failed,
                                report=report.to_dict(), finished_at=utcnow())
                s.add(run)
                s.flush()
                report.import_id = run.id
                for r in rows:
                    r["import_id"] = run.id
                for i in range(0, len(rows), 10000):
                    s.execute(insert(Object), rows[i:i + 10000])
                for oid, change in self.updates:
                    s.execute(update(Object).where(Object.object_id == oid).values(**change))
                if self.ecotaxa_columns:
                    self._merge_meta(s)
                if rows:
                    self.project.images_dir.mkdir(exist_ok=True)
                    os.rename(self.stage, final)
                    moved = True
        except ImportFailed:
            raise
        except Exception as exc:
            if moved:
                shutil.rmtree(final, ignore_errors=True)
            raise ImportFailed(f"import failed, nothing was written: {exc.__class__.__name__}: {exc}") from exc

    def _merge_meta(self, s) -> None:
        row = s.get(Meta, ECOTAXA_META_KEY)
        cols = dict((n, t) for n, t in (row.value if row is not None else []))
        for n, t in self.ecotaxa_columns.items():
            cols[n] = _merged_type(cols.get(n), t)
        value = [[n, t] for n, t in cols.items()]
        if row is None:
            s.add(Meta(key=ECOTAXA_META_KEY, value=value))
        else:
            row.value = value


def _merged_type(old: str | None, new: str | None) -> str:
    """The type of a column that two tables typed: text where either said text ('43°0 0' is no
    number), else the one known."""
    if old and new and "t" in (old, new):
        return "t"
    return old or new or ""


def _changes(c: Candidate, label, status, meta) -> dict:
    """Return the columns an update from candidate `c` changes: a label or status only where
    the source gives one, metadata merged (the source's values win)."""
    out = {}
    if c.label is not None and c.label != label:
        out["imported_label"] = c.label
    if c.status is not None and c.status != status:
        out["imported_status"] = c.status
    if c.meta:
        merged = {**(meta or {}), **c.meta}
        if merged != (meta or {}):
            out["meta"] = merged
    return out
