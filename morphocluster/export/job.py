"""The export job: write an export under the project's cache, for a download from the browser.

`new_params(format, labels, with_images, status)` checks the options and draws a random token;
`run_export(project, params, progress)` (the jobs kind "export") writes the file to
`cache/exports/<token>/<name>` with the library's `export()`, which writes a temporary name and
renames it when complete; a job that fails or is cancelled removes its folder, so it leaves no
file. `export_file(project, token)` finds the finished file of a token (None for anything else).

Kept: the newest `KEEP` exports of a project and none older than `MAX_AGE` (a day); the others
are removed when the next export starts. Memory does not grow with the number of objects: the
writers stream, and progress comes from the id windows they walk (`labels.on_windows`).
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import ExportError, check_options, export
from .summary import images_for, summarize

EXPORTS = "exports"
KEEP = 5
MAX_AGE = 24 * 3600.0
TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}")  # what secrets.token_urlsafe(24) gives: 32 characters
TICK = 0.5  # seconds between progress reports


@dataclass
class ExportResult:
    token: str
    name: str
    size: int
    n_objects: int
    n_labelled: int
    n_unlabelled: int
    n_labels: int
    n_images: int
    warnings: list = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.n_objects:,} objects ({self.n_labelled:,} labelled, {self.n_unlabelled:,} "
                f"unlabelled), {self.n_labels:,} labels"
                + (f", {self.n_images:,} images" if self.n_images else "")
                + f", {human_size(self.size)}: {self.name}")
        return " · ".join([text, *self.warnings])


def new_params(format: str, labels: str = "validated", with_images: bool = False,
               status: str = "any") -> dict:
    """Return the job parameters for these options, with a fresh random token."""
    check_options(format, labels, status)
    return {"format": format, "labels": labels, "status": status,
            "with_images": images_for(format, with_images), "token": secrets.token_urlsafe(24)}


def exports_dir(project) -> Path:
    return project.cache_dir / EXPORTS


def export_file(project, token) -> Path | None:
    """Return the finished file of export `token`, or None (not a token, unknown, unfinished)."""
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        return None
    folder = exports_dir(project) / token
    if folder.is_symlink() or not folder.is_dir():
        return None
    # the library's temporary copy is a hidden name beside the file until it is complete
    files = [f for f in folder.iterdir()
             if not f.name.startswith(".") and not f.is_symlink() and f.is_file()]
    return files[0] if len(files) == 1 else None


def file_name(project, format: str, labels: str, images: bool, suffix: str,
              status: str = "any") -> str:
    """'myproject_ecotaxa_images_validated_20250102-030405.zip' ('..._all_validated-only_...' with
    status 'validated'): ASCII, no path, no quotes."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", project.root.name).strip("_")[:60] or "project"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    seen = "_validated-only" if status == "validated" else ""
    return f"{base}_{format}{'_images' if images else ''}_{labels}{seen}_{stamp}{suffix}"


def run_export(project, params: dict, progress) -> ExportResult:
    """Write the export that `params` (from `new_params`) asks for; return what it holds."""
    from ..labels import on_windows

    fmt, labels, token = params.get("format"), params.get("labels", "validated"), params.get("token")
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        raise ExportError("export job without a valid token; start it with export.job.new_params")
    status = params.get("status", "any")  # jobs stored before the choice existed: "any"
    checked = new_params(fmt, labels, bool(params.get("with_images")), status)
    images = checked["with_images"]
    plan = summarize(project, fmt, labels, images, status)
    if plan.problem:
        raise ExportError(plan.problem)
    clean(project, keep=KEEP - 1)
    folder = exports_dir(project) / token
    folder.mkdir(parents=True)  # a token is used once
    out = folder / file_name(project, fmt, labels, images, plan.suffix, status)
    progress(0.0, f"exporting {plan.n_objects:,} objects as {fmt}")
    last = [0.0]

    def tick(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= TICK:
            last[0] = now
            progress(0.02 + 0.93 * fraction, f"{fmt}: {fraction:.0%} of the objects written")

    try:
        with on_windows(tick):
            report = export(project, fmt, out, labels=labels, with_images=images, status=status)
        size = out.stat().st_size
    except BaseException:  # failed or cancelled: no file, no folder
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return ExportResult(token, out.name, size, report.n_objects, report.n_labelled,
                        report.n_unlabelled, plan.n_labels, report.n_images, list(report.warnings))


def clean(project, keep: int = KEEP, max_age: float = MAX_AGE) -> int:
    """Remove exports beyond the newest `keep` and those older than `max_age` s; return how many."""
    root = exports_dir(project)
    if not root.is_dir():
        return 0
    folders = []
    for d in root.iterdir():
        if TOKEN.fullmatch(d.name) and d.is_dir() and not d.is_symlink():
            folders.append((d.stat().st_mtime, d))
    folders.sort(reverse=True)
    now = time.time()
    gone = [d for i, (mtime, d) in enumerate(folders) if i >= keep or now - mtime > max_age]
    for d in gone:
        shutil.rmtree(d, ignore_errors=True)
    return len(gone)


def human_size(n: int) -> str:
    """'812 B', '1.2 MB', '3.4 GB'."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
