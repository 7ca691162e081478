"""Import from the browser (admins): a ZIP uploaded with a progress bar, or a path below the
server's data root (config DATA_ROOT, `serve --data-root`); each runs as an "import" job."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request, url_for
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from .. import jobs
from ..images import mib
from ..importers import FORMATS
from ..importers import job as import_job
from . import project
from .common import message, redirect_to, render, role_required

bp = Blueprint("import_views", __name__, url_prefix="/import")

MAX_UPLOAD_BYTES = 20 << 30  # default of config MAX_UPLOAD_BYTES
CHUNK = 1 << 20
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class _Refused(Exception):
    def __init__(self, text: str, status: int):
        super().__init__(text)
        self.status = status


def init_app(app):
    app.config.setdefault("MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES)
    app.config.setdefault("DATA_ROOT", None)
    app.register_blueprint(bp)


@bp.url_value_preprocessor
def _cap_body(endpoint, values):
    # runs before the CSRF check, which may read a form: no body over the limit is parsed or spooled
    request.max_content_length = current_app.config["MAX_UPLOAD_BYTES"]


@bp.route("/")
@role_required("admin")
def index():
    root = current_app.config.get("DATA_ROOT")
    return render("import.html", formats=FORMATS, data_root=root,
                  folders=import_job.sub_folders(root) if root else [],
                  max_bytes=current_app.config["MAX_UPLOAD_BYTES"],
                  max_text=mib(current_app.config["MAX_UPLOAD_BYTES"]), active=jobs.active_job(project()))


@bp.route("/upload", methods=["POST"])
@role_required("admin")
def upload():
    """Take a ZIP as the request body (options in the query), stream it to disk, start the job."""
    p, limit = project(), current_app.config["MAX_UPLOAD_BYTES"]
    try:
        params = _params(request.args)
        size = request.content_length
        if size is not None and size > limit:
            raise _Refused(f"the file is {mib(size)}, above the upload limit of {mib(limit)}; nothing "
                           "was stored (import it from a folder below the data root instead)", 413)
        if request.mimetype in FORM_TYPES:
            raise _Refused("send the ZIP file itself as the request body, not a form", 415)
        _not_busy(p)
        dest = import_job.new_upload(p, request.args.get("name", ""))
        try:
            _receive(dest, limit, size)
            params.update(source=str(dest), upload=True, name=import_job.upload_name(request.args.get("name")))
            job_id = jobs.start_job(p, "import", params, user_id=g.user["id"])
        except BaseException:
            import_job.remove_upload(p, dest)
            raise
    except _Refused as exc:
        return jsonify(error=str(exc)), exc.status
    except jobs.JobBusy as exc:
        return jsonify(error=f"{exc}; try again when it has ended"), 409
    return jsonify(job=job_id, url=url_for("jobs_views.details", job_id=job_id))


@bp.route("/folder", methods=["POST"])
@role_required("admin")
def folder():
    """Start an import of a folder or file below the data root."""
    p, root = project(), current_app.config.get("DATA_ROOT")
    if not root:
        return message("no data root: start the server with --data-root DIR to import from its folders",
                       "error", 400)
    try:
        params = _params(request.form)
        rel = request.form.get("path", "").strip()
        # data_root: the job refuses links inside the folder that lead out of the root
        params.update(source=str(import_job.resolve_under(root, rel)), data_root=str(root), name=rel[:200])
        job_id = jobs.start_job(p, "import", params, user_id=g.user["id"])
    except _Refused as exc:
        return message(str(exc), "error", exc.status)
    except import_job.BadPath as exc:
        return message(str(exc), "error", 400)
    except jobs.JobBusy as exc:
        return message(f"{exc}; try again when it has ended", "error", 409)
    return redirect_to(url_for("jobs_views.details", job_id=job_id))


def _params(values) -> dict:
    try:
        return import_job.import_params(values, prepare=values.get("then") == "prepare",
                                        user_id=g.user["id"])
    except ValueError as exc:
        raise _Refused(str(exc), 400) from None


def _not_busy(p) -> None:
    busy = jobs.active_job(p)
    if busy is not None:  # refused before a long upload, not after it
        raise _Refused(f"job {busy['id']} ({busy['kind']}) is still {busy['state']}; try again when "
                       "it has ended", 409)


def _receive(dest, limit: int, size: int | None) -> int:
    """Copy the request body to `dest` in chunks, at most `limit` bytes; return its length."""
    n = 0
    try:
        stream = request.stream
        with open(dest, "wb") as out:
            while chunk := stream.read(CHUNK):
                n += len(chunk)
                if n > limit:
                    raise RequestEntityTooLarge()
                out.write(chunk)
    except RequestEntityTooLarge:
        raise _Refused(f"the upload is above the limit of {mib(limit)}; nothing was stored", 413) from None
    except ClientDisconnected:
        raise _Refused("the upload broke off; nothing was stored", 400) from None
    if n == 0:
        raise _Refused("the upload is empty (choose a ZIP file)", 400)
    if size is not None and n < size:
        raise _Refused(f"the upload broke off after {mib(n)} of {mib(size)}; nothing was stored", 400)
    return n
