"""Jobs page: start features, index, clustering and learning in the background; watch their
progress, cancel them; a job's own page (admins) with its traceback or an import's report."""

from __future__ import annotations

from flask import Blueprint, abort, g, request, send_file

from .. import jobs
from ..store import utcnow
from . import project
from .common import form_int, message, render, role_required, toast

REPORT_SHOWN = 100  # report entries shown on an import job's page; the download has all
CHAIN_GRACE_S = 10  # a chain's next job is recorded just after the one before ends done

bp = Blueprint("jobs_views", __name__, url_prefix="/jobs")

MAX_CLUSTER_SIZE = 1_000_000  # a cluster round's min_cluster_size: at least 2 (HDBSCAN)
LABELS = {"features": "Compute features", "index": "Build the index", "cluster": "Cluster round"}
LEARN = "Learn features"  # the learn job has a form of its own (features.learn_job's options)


def init_app(app):
    app.register_blueprint(bp)


@bp.route("/")
def index():
    p = project()
    jobs.reap(p)  # a job whose process died elsewhere shows as failed, not running for ever
    found, active = jobs.list_jobs(p), jobs.active_job(p)
    return render("jobs.html", jobs=found, active=active, labels=LABELS, learn_label=LEARN,
                  watch=active is not None or _chain_goes_on(found))


def _chain_goes_on(found: list[dict]) -> bool:
    """Whether the newest job has just ended done with more steps to start: the list is then
    fetched again (a row polls only itself, so a chain's next job would never show)."""
    newest = found[0] if found else None
    if not newest or newest["state"] != "done" or not (newest["params"] or {}).get("then"):
        return False
    ended = newest["finished_at"]
    return ended is not None and (utcnow() - ended).total_seconds() < CHAIN_GRACE_S


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
    """A job's page for admins: its row (kept up to date), an import's report, a traceback."""
    from ..importers.job import read_report

    job = _job(job_id)
    report = read_report(project(), job_id, REPORT_SHOWN) if job["kind"] == "import" else None
    return render("job_details.html", job=job, report=report)


@bp.route("/<int:job_id>/report.tsv")
@role_required("admin")
def report(job_id: int):
    """The whole report of an import job, as a TSV download."""
    from ..importers.job import read_report

    _job(job_id)
    found = read_report(project(), job_id, 0)
    if found is None:
        abort(404, description=f"job {job_id} wrote no report")
    return send_file(found["path"], mimetype="text/tab-separated-values", as_attachment=True,
                     download_name=f"import-job-{job_id}-report.tsv", max_age=0)


@bp.route("/<int:job_id>/cancel", methods=["POST"])
@role_required("admin")
def cancel(job_id: int):
    """Ask a running job to stop; it ends "cancelled" at its next step, having stored nothing."""
    job = _job(job_id)
    if not jobs.cancel_job(project(), job_id):
        return message(f"job {job_id} has already ended ({job['state']})", "info", 409)
    what = ("the training so far is kept, and learning again goes on from there" if job["kind"] == "learn"
            else "stores nothing")
    return (render("_job.html", job=jobs.get_job(project(), job_id), htmx=True)
            + toast(f"Cancelling job {job_id}: it stops at its next step; {what}."))


def _job(job_id: int) -> dict:
    job = jobs.get_job(project(), job_id)
    if job is None:
        abort(404, description=f"no job {job_id}")
    return job


@bp.route("/start/<kind>", methods=["POST"])
@role_required("admin")
def start(kind: str):
    if kind not in LABELS and kind != "learn":  # import and export start from their own pages
        abort(404, description=f"unknown job kind {kind!r}")
    params = {}
    if kind == "learn":
        from ..features.learn_job import learn_params

        try:
            params = learn_params(request.form)
        except ValueError as exc:
            return message(str(exc), "error", 400)
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
    return render("_job.html", job=job, htmx=True) + toast(f"Started: {LABELS.get(kind, LEARN)}.")
