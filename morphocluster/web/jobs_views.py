"""Jobs page: start features, index and clustering in the background; watch their progress."""

from __future__ import annotations

from flask import Blueprint, abort, g

from .. import jobs
from . import project
from .common import form_int, message, render, role_required, toast

bp = Blueprint("jobs_views", __name__, url_prefix="/jobs")

MAX_CLUSTER_SIZE = 1_000_000  # a cluster round's min_cluster_size: at least 2 (HDBSCAN)
LABELS = {"features": "Compute features", "index": "Build the index", "cluster": "Cluster round"}


def init_app(app):
    app.register_blueprint(bp)


@bp.route("/")
def index():
    p = project()
    jobs.reap(p)  # a job whose process died elsewhere shows as failed, not running for ever
    return render("jobs.html", jobs=jobs.list_jobs(p), active=jobs.active_job(p), labels=LABELS)


@bp.route("/<int:job_id>")
def status(job_id: int):
    """One job's row (htmx polls it every second while it runs)."""
    jobs.reap(project())
    job = jobs.get_job(project(), job_id)
    if job is None:
        abort(404, description=f"no job {job_id}")
    return render("_job.html", job=job, htmx=True)


@bp.route("/<int:job_id>/details")
@role_required("admin")
def details(job_id: int):
    """A failed job's traceback, for admins (everyone else sees its one-line error)."""
    job = jobs.get_job(project(), job_id)
    if job is None:
        abort(404, description=f"no job {job_id}")
    return render("job_details.html", job=job)


@bp.route("/start/<kind>", methods=["POST"])
@role_required("admin")
def start(kind: str):
    if kind not in LABELS:  # import and export start from their own pages
        abort(404, description=f"unknown job kind {kind!r}")
    params = {}
    if kind == "cluster":
        params["user_id"] = g.user["id"]
        size = form_int("min_cluster_size", lo=2, hi=MAX_CLUSTER_SIZE)  # empty: automatic
        if size is not None:
            params["min_cluster_size"] = size
    try:
        job_id = jobs.start_job(project(), kind, params, user_id=g.user["id"])
    except jobs.JobBusy as exc:
        return message(str(exc), "error", 409)
    job = jobs.get_job(project(), job_id)
    return render("_job.html", job=job, htmx=True) + toast(f"Started: {LABELS[kind]}.")
