"""Export from the browser: options, what the file will hold, the job, the download.

Annotators and admins only. The CLI has no roles (whoever can read the project folder exports),
but here an export is a job: it takes the project's one job slot (an admin's clustering round
waits for it) and disk space, and viewers start nothing anywhere in the UI.
"""

from __future__ import annotations

from flask import Blueprint, abort, g, request, send_file

from .. import jobs
from ..export import ExportError, check_options
from ..export.job import export_file, human_size, new_params
from ..export.summary import summarize
from . import project
from .common import message, render, role_required, toast

bp = Blueprint("export_views", __name__, url_prefix="/export")

FORMAT_TEXT = {
    "ecotaxa": ("EcoTaxa", "a TSV table for EcoTaxa, with the images in a ZIP on request"),
    "csv": ("CSV", "one row per object: id, label, label path, status, annotator, date"),
    "imagefolder": ("Class folders (ZIP)", "<label>/<object id>.<ext>, plus index.csv"),
    "hdf5": ("HDF5", "the active features with the labels (the original MorphoCluster layout)"),
    "morphocluster-tree": ("Tree ZIP", "the original MorphoCluster tree: nodes and members"),
}
RECENT = 10  # export jobs listed on the page


def init_app(app):
    app.register_blueprint(bp)


def _options(source) -> tuple[str, str, bool, str]:
    """(format, labels, with_images, status) of the query or form; 400 for a value not offered."""
    fmt, labels, status = (source.get(k, "")[:40] or d for k, d in
                           (("format", "ecotaxa"), ("labels", "validated"), ("status", "any")))
    try:
        check_options(fmt, labels, status)  # the library's check, the CLI's messages
    except ExportError as exc:
        abort(400, description=str(exc))
    return fmt, labels, source.get("with_images") in ("1", "on", "true"), status


def _row(job: dict) -> dict:
    """A job as the page shows it, with its file where it is done and still kept."""
    params = job.get("params") or {}
    path = export_file(project(), params.get("token")) if job["state"] == "done" else None
    fmt = params.get("format")
    return {**job, "format": fmt, "title": FORMAT_TEXT.get(fmt, (fmt,))[0], "labels": params.get("labels"),
            "status": params.get("status", "any"), "with_images": params.get("with_images"), "token": params.get("token"),
            "file": path.name if path else None, "size": human_size(path.stat().st_size) if path else None}


@bp.route("/")
@role_required("annotator")
def index():
    p = project()
    jobs.reap(p)
    fmt, labels, images, status = _options(request.args)
    recent = [_row(j) for j in jobs.list_jobs(p, limit=100) if j["kind"] == "export"][:RECENT]
    return render("export.html", fmt=fmt, labels=labels, with_images=images, status=status,
                  formats=FORMAT_TEXT, recent=recent, active=jobs.active_job(p))


@bp.route("/preview")
@role_required("annotator")
def preview():
    """What the file will hold with the options of the form (htmx asks on every change)."""
    fmt, labels, images, status = _options(request.args)
    return render("_export_preview.html", summary=summarize(project(), fmt, labels, images, status),
                  htmx=True)


@bp.route("/start", methods=["POST"])
@role_required("annotator")
def start():
    p = project()
    fmt, labels, images, status = _options(request.form)
    summary = summarize(p, fmt, labels, images, status)
    if summary.problem:
        return message(f"Nothing exported: {summary.problem}.", "error", 409)
    try:
        params = new_params(fmt, labels, images, status)
        job_id = jobs.start_job(p, "export", params, user_id=g.user["id"])
    except jobs.JobBusy as exc:
        return message(f"Another job is running ({exc}): export when it has ended.", "error", 409)
    except ExportError as exc:
        return message(str(exc), "error", 400)
    row = _row(jobs.get_job(p, job_id))
    gone = '<p id="no-exports" hx-swap-oob="delete"></p>'  # the "no export yet" line
    return render("_export_job.html", job=row, htmx=True) + gone + toast(
        f"Export started: {summary.n_objects:,} objects as {FORMAT_TEXT[fmt][0]}.")


@bp.route("/job/<int:job_id>")
@role_required("annotator")
def job(job_id: int):
    """One export job's row (htmx polls it every second while it runs)."""
    jobs.reap(project())
    found = jobs.get_job(project(), job_id)
    if found is None or found["kind"] != "export":
        abort(404, description=f"no export job {job_id}")
    return render("_export_job.html", job=_row(found), htmx=True)


@bp.route("/download/<token>")
@role_required("annotator")
def download(token: str):
    """Stream a finished export (ranges and conditional requests too); 404 for anything else."""
    path = export_file(project(), token)
    if path is None:
        abort(404, description="no such export: it was never made here, or it was removed "
                               "(exports are kept a day, the newest five)")
    # the name is ours (ASCII, made by export.job.file_name), never one the user typed
    resp = send_file(path, as_attachment=True, download_name=path.name, conditional=True,
                     etag=True, max_age=0, mimetype=_mimetype(path.suffix))
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


def _mimetype(suffix: str) -> str:
    return {".zip": "application/zip", ".csv": "text/csv", ".tsv": "text/tab-separated-values",
            ".h5": "application/x-hdf5"}.get(suffix, "application/octet-stream")
