"""Check candidate objects batch by batch, stage their images, commit them all in one go.

Policy: every bad row is reported (file and row) and skipped; the good objects are committed
in ONE transaction. Candidates arrive one by one from the collectors (a source is streamed,
never listed whole) and are checked a batch at a time: duplicate ids against what this import
has already seen (`scratch`, on disk), ids already in the project with one `IN` query, images
decoded and staged under the project's cache/. Each batch's images go to their own shard
folder (`SHARD_SIZE` files at most), so no folder of images/ grows with the import. The good
rows wait in the scratch table; `commit` copies them into the project in one transaction and
moves the staged images into images/ in one rename just before the commit (removing them
again if it fails), so nothing already in the project is lost or half-written. With `strict`,
the first problem raises ImportFailed before anything is written.
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

from ..images import ImageLimits
from ..store import ImportRun, Meta, Object, utcnow
from .report import ImportFailed, ImportReport
from .scratch import Scratch
from .stage import Stager

MAX_ID_LEN = 255
ECOTAXA_META_KEY = "ecotaxa_columns"
SHARD_SIZE = 1000  # images per shard folder (and objects per batch)
CHUNK = 32  # images per task of the staging threads


@dataclass(slots=True)
class ExtraImage:
    """A further image of one object (EcoTaxa img_rank above the lowest)."""

    rank: int
    src: str | Path
    rel: str
    where: str
    image_name: str


@dataclass(slots=True)
class Candidate:
    """One object found in a source, not yet checked."""

    object_id: str
    src: str | Path  # image file on disk (the source folder or an unpacked ZIP)
    rel: str  # destination below this import's shard folder, POSIX separators
    where: str  # "file:line" or "file" for messages
    label: str | None = None
    status: str | None = None
    meta: dict | None = None
    image_name: str = ""  # the image as the source names it, for messages
    extra: list[ExtraImage] = field(default_factory=list)

    def __post_init__(self):
        self.image_name = self.image_name or os.path.basename(self.src)


def shard_name(k: int) -> str:
    """The folder of shard `k` below an import's folder: two levels of at most 1000 entries."""
    return f"{k // 1000:03d}/{k % 1000:03d}"


class Batch:
    """Everything one `import_sources` call will add: `add` each candidate, then `commit`."""

    def __init__(self, project, report: ImportReport, work: Path, update: bool = False,
                 limits: ImageLimits | None = None, shard_size: int = SHARD_SIZE,
                 link: bool = False, progress: bool = False):
        self.project = project
        self.limits = limits or ImageLimits()
        # what `unpack_zip` refused (target path -> (where, why)): reported on the row naming it
        self.refused: dict[str, tuple[str, str]] = {}
        self._named: set[str] = set()  # refused targets that a row named
        report.limits, report.refused = self.limits, self.refused
        self.update = update  # objects already stored take this source's labels and metadata
        self.report = report
        self.work = work
        # the images' folder; the process id tells a killed import's folder (`orphan_folders`)
        self.token = datetime.now().strftime("%Y%m%d-%H%M%S-") + f"{os.getpid()}-" + secrets.token_hex(3)
        self.stage = work / "stage"
        self.shard_size = max(1, shard_size)
        self.scratch_db = Scratch(work / "scratch.sqlite")
        self.stager = Stager(self.limits, self.refused, str(work), link=link)
        self.pending: list[Candidate] = []
        self._pending_files = 0
        self.n_found = 0  # candidates with a usable id
        self.n_shards = 0
        self.n_no_image = self.n_relabelled = 0
        self._n_scratch = 0
        self._pool: ThreadPoolExecutor | None = None
        self._job = None  # the batch whose images are being staged
        # True: a bar on the terminal; a callable(what, n, total) is told "read" and "checked" counts
        self._progress, self._bar, self._n_checked = progress, None, 0
        if callable(progress):
            report.progress = progress  # `unpack_zip` tells it "unpacked" counts
        self.ecotaxa_columns: dict[str, str] = {}  # name -> "t"|"f"|"" in first-seen order

    def scratch(self, kind: str) -> Path:
        """Return a new empty folder name under the work folder (for unpacked ZIPs)."""
        self._n_scratch += 1
        return self.work / kind / str(self._n_scratch)

    def add(self, cand: Candidate) -> None:
        """Take one candidate; check and stage the batch when it is full."""
        if not cand.object_id:
            self.report.fail(cand.where, "empty object id; row skipped")
            return
        if len(cand.object_id) > MAX_ID_LEN:
            self.report.fail(cand.where, f"object id longer than {MAX_ID_LEN} characters; row skipped")
            return
        if self.refused:
            for src in (cand.src, *(e.src for e in cand.extra)):
                if str(src) in self.refused:
                    self._named.add(str(src))
        self.n_found += 1
        if callable(self._progress) and self.n_found % 100 == 0:
            self._progress("read", self.n_found, None)
        self.pending.append(cand)
        self._pending_files += 1 + len(cand.extra)
        if self._pending_files >= self.shard_size:
            self.flush()

    def add_ecotaxa_columns(self, columns: list[tuple[str, str]]) -> None:
        for name, typ in columns:
            self.ecotaxa_columns[name] = _merged_type(self.ecotaxa_columns.get(name), typ)

    # --- one batch ----------------------------------------------------------------------------
    def flush(self) -> None:
        """Check the pending candidates and start staging their images; keep (in the scratch
        table) the rows of the batch before, whose images are staged by now."""
        cands, self.pending, self._pending_files = self.pending, [], 0
        job = None
        if cands:
            cands = self._dedupe(cands)
            existing = self._existing([c.object_id for c in cands])
            todo = []
            for c in cands:
                if c.object_id in existing:
                    self._known(c, existing[c.object_id])
                else:
                    todo.append(c)
            job = self._submit(todo) if todo else None
        # one batch in flight: its images are staged while the next one is read and checked
        if self._job is not None:
            self.scratch_db.add_rows(self._finish(*self._job))
        self._job = job

    def _dedupe(self, cands: list[Candidate]) -> list[Candidate]:
        """Drop (and report) ids seen earlier in this batch or in an earlier one."""
        earlier = self.scratch_db.first_seen([c.object_id for c in cands])
        first: dict[str, Candidate] = {}
        out = []
        for c in cands:
            prev = first[c.object_id].where if c.object_id in first else earlier.get(c.object_id)
            if prev is not None:
                self.report.fail(c.where, f"duplicate object id {c.object_id!r} (first at {prev}); "
                                          "row skipped")
                continue
            first[c.object_id] = c
            out.append(c)
        self.scratch_db.add_seen([(c.object_id, c.where) for c in out])
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

    def _known(self, c: Candidate, stored_row: tuple) -> None:
        """Skip, update or report a candidate whose id is already stored."""
        report = self.report
        stored, label, status, meta = stored_row
        exists = os.path.exists(c.src)
        same = self._same_content(c, stored) if exists else True
        if same and self.update:
            change = _changes(c, label, status, meta)
            if change:
                self.scratch_db.add_update(c.object_id, change)
            else:
                report.skipped += 1
        elif not exists:
            self.n_no_image += 1
            report.skipped += 1
        elif same:
            report.skipped += 1
            self.n_relabelled += (c.label, c.status) != (label, status)
        elif same is None:
            report.fail(c.where, f"object id {c.object_id!r} is already in the project, but its stored "
                                 f"image {stored} cannot be read to compare; row skipped")
        else:
            report.fail(c.where, f"object id {c.object_id!r} is already in the project with a different "
                                 "image; row skipped (rename the object or import into another project)")

    def _same_content(self, cand: Candidate, stored_rel: str) -> bool | None:
        try:
            stored = self.project.image_path(stored_rel)
            if stored.stat().st_size != os.stat(cand.src).st_size:
                return False
            with open(cand.src, "rb") as fh:
                return stored.read_bytes() == fh.read()
        except OSError:
            return None

    def _submit(self, todo: list[Candidate]):
        """Start staging the images of `todo` into a new shard; return what `_finish` takes."""
        shard = shard_name(self.n_shards)
        self.n_shards += 1
        # several objects may share one image file (EcoTaxa): stage each file once
        first: dict[str, Candidate | ExtraImage] = {}
        for c in todo:
            first.setdefault(c.rel, c)
            for e in c.extra:
                first.setdefault(e.rel, e)
        base = os.path.join(str(self.stage), shard)
        self.stager.made = set()  # folders of earlier shards are not visited again
        jobs = [(rel, u.src, os.path.join(base, rel), u.image_name) for rel, u in first.items()]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)))
        futures = [self._pool.submit(self._stage_chunk, jobs[i:i + CHUNK]) for i in range(0, len(jobs), CHUNK)]
        return todo, shard, futures

    def _finish(self, todo: list[Candidate], shard: str, futures) -> list[dict]:
        """Wait for a batch's images; return the rows of the objects whose image was staged."""
        staged = dict(pair for f in futures for pair in f.result())
        rows = []
        for c in todo:
            res = staged[c.rel]
            if isinstance(res, str):
                self.report.fail(c.where, f"{res}; row skipped")
                continue
            rows.append({"object_id": c.object_id, "path": f"{self.token}/{shard}/{c.rel}",
                         "width": res[0], "height": res[1], "meta": self._with_extra(c, staged, shard),
                         "imported_label": c.label, "imported_status": c.status})
        self._tick(len(todo))
        return rows

    def _stage_chunk(self, chunk):
        return [(rel, self.stager.stage(src, dest, name)) for rel, src, dest, name in chunk]

    def _with_extra(self, c: Candidate, staged: dict, shard: str) -> dict | None:
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
                kept.append({"rank": e.rank, "path": f"{self.token}/{shard}/{e.rel}", "file": e.image_name})
        return {**(c.meta or {}), "_extra_images": kept} if kept else c.meta

    def _tick(self, n: int) -> None:
        self._n_checked += n
        if callable(self._progress):
            self._progress("checked", self._n_checked, None)
            return
        if self._progress and self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(desc="import", unit="obj", leave=False)
        if self._bar is not None:
            self._bar.update(n)

    # --- committing -------------------------------------------------------------------------
    def commit(self) -> ImportReport:
        """Check the last batch, then write every good row in one transaction."""
        self.flush()
        self.flush()  # the last batch's images
        report = self.report
        for target, (where, why) in self.refused.items():
            if target not in self._named:
                report.fail(where, f"{why}; entry skipped")
        if self.n_relabelled:
            report.note(f"{self.n_relabelled} skipped objects have another imported label or status in "
                        "this source; the stored ones are kept (--update takes this source's)")
        if self.n_no_image:
            report.note(f"{self.n_no_image} objects already in the project have no image in this source; "
                        "skipped (their stored image and metadata are kept)")
        self._write()
        return report

    def close(self) -> None:
        """Stop the staging threads and close the scratch table (after commit or a failure)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._bar is not None:
            self._bar.close()
        self.scratch_db.close()

    def _write(self) -> None:
        report = self.report
        report.added = self.scratch_db.n_rows
        report.updated = self.scratch_db.n_updates
        if report.added:
            report.extra["images_folder"] = self.token
        if self.ecotaxa_columns:
            report.extra[ECOTAXA_META_KEY] = [[n, t] for n, t in self.ecotaxa_columns.items()]
        final = self.project.images_dir / self.token
        moved = False
        try:
            with self.project.transaction() as s:
                run = ImportRun(source=report.shown("\n".join(report.sources))[:10000],
                                format=",".join(sorted(set(report.formats.values())))[:32],
                                n_added=report.added, n_skipped=report.skipped, n_failed=report.failed,
                                report=report.to_dict(), finished_at=utcnow())
                s.add(run)
                s.flush()
                report.import_id = run.id
                conn = s.connection()
                for rows in self.scratch_db.iter_rows(run.id):
                    conn.execute(insert(Object.__table__), rows)
                for oid, change in self.scratch_db.iter_updates():
                    s.execute(update(Object).where(Object.object_id == oid).values(**change))
                if self.ecotaxa_columns:
                    self._merge_meta(s)
                if report.added:
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
