"""Thumbnails and full images, addressed by Object.id only, with ETag and Cache-Control."""

from __future__ import annotations

from flask import Blueprint, abort, request, send_file

from .. import thumbnails
from ..project import ProjectError
from . import project

bp = Blueprint("images", __name__)

MAX_AGE = 7 * 24 * 3600  # an object's image never changes under its id


def init_app(app):
    app.register_blueprint(bp)


def _send(path, mimetype=None):
    tag = thumbnails.etag(path)
    if request.if_none_match and tag in request.if_none_match:
        resp = send_file(path, mimetype=mimetype, etag=False, conditional=False)
        resp.status_code, resp.response = 304, []
        resp.headers.pop("Content-Length", None)
    else:
        resp = send_file(path, mimetype=mimetype, etag=False, conditional=False, max_age=MAX_AGE)
    resp.set_etag(tag)
    resp.headers["Cache-Control"] = f"private, max-age={MAX_AGE}"
    return resp


@bp.route("/thumb/<int:pk>")
def thumb(pk: int):
    size = request.args.get("s", thumbnails.DEFAULT_SIZE, type=int)
    try:
        path = thumbnails.thumbnail(project(), pk, size)
    except (thumbnails.ThumbnailError, ProjectError) as exc:
        abort(404, description=str(exc))
    return _send(path, "image/png")


@bp.route("/image/<int:pk>")
@bp.route("/image/<int:pk>/<int:rank>")
def image(pk: int, rank: int = 0):
    try:
        path = thumbnails.source_path(project(), pk, rank)
    except (thumbnails.ThumbnailError, ProjectError) as exc:
        abort(404, description=str(exc))
    return _send(path)
