"""Thumbnails and full images, addressed by Object.id only, with ETag and Cache-Control.

A stored image is served with a type read from its first bytes, never from its file name: an
imported `cell.html` that is a valid GIF goes out as image/gif, and a file that is none of the
image formats below goes out as a download, so that no stored file is ever shown as a page.
"""

from __future__ import annotations

from flask import Blueprint, abort, request, send_file

from .. import thumbnails
from ..images import image_type_of
from ..project import ProjectError
from . import project

bp = Blueprint("images", __name__)

MAX_AGE = 7 * 24 * 3600  # an object's image never changes under its id
# what a browser may show of a stored file: no script, no style, no frames, a sandbox
IMAGE_CSP = "default-src 'none'; img-src 'self'; frame-ancestors 'none'; sandbox"

def init_app(app):
    app.register_blueprint(bp)


def image_type(path) -> tuple[str, str] | None:
    """Return (MIME type, extension) of an image file from its content (`images.image_type_of`)."""
    with open(path, "rb") as f:
        return image_type_of(f.read(16))


def _send(path, mimetype: str, name: str, attachment: bool = False):
    # the download name is ours (the object id), never the stored one (it may hold anything)
    kw = dict(mimetype=mimetype, as_attachment=attachment, download_name=name, etag=False,
              conditional=False)
    tag = thumbnails.etag(path)
    if request.if_none_match and tag in request.if_none_match:
        resp = send_file(path, **kw)
        resp.status_code, resp.response = 304, []
        resp.headers.pop("Content-Length", None)
    else:
        resp = send_file(path, max_age=MAX_AGE, **kw)
    resp.set_etag(tag)
    resp.headers["Cache-Control"] = f"private, max-age={MAX_AGE}"
    resp.headers["Content-Security-Policy"] = IMAGE_CSP
    return resp


@bp.route("/thumb/<int:pk>")
def thumb(pk: int):
    size = request.args.get("s", thumbnails.DEFAULT_SIZE, type=int)
    try:
        path = thumbnails.thumbnail(project(), pk, size)
    except (thumbnails.ThumbnailError, ProjectError) as exc:
        abort(404, description=str(exc))
    return _send(path, "image/png", f"{pk}.png")  # made by us with Pillow: always PNG


@bp.route("/image/<int:pk>")
@bp.route("/image/<int:pk>/<int:rank>")
def image(pk: int, rank: int = 0):
    try:
        path = thumbnails.source_path(project(), pk, rank)
    except (thumbnails.ThumbnailError, ProjectError) as exc:
        abort(404, description=str(exc))
    try:
        kind = image_type(path)
    except OSError:
        abort(404, description=f"object {pk}: its image cannot be read")
    name = f"{pk}-{rank}" if rank else str(pk)
    if kind is None:  # not an image a browser should show: a download, never a page
        return _send(path, "application/octet-stream", name, attachment=True)
    return _send(path, kind[0], f"{name}.{kind[1]}")
