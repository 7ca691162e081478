"""Object page: the image, its metadata, where it is filed and its nearest neighbours."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for

from ..labels import SUBSTRING_ROWS, find_objects, object_record
from . import project
from .common import arg_int, render

bp = Blueprint("objects", __name__, url_prefix="/object")


def init_app(app):
    app.register_blueprint(bp)


def neighbours(p, pk: int, k: int = 24) -> tuple[list[dict], str | None]:
    """Return the k nearest objects to `pk` (nearest first) and an error text if there is no index."""
    from .. import index
    from ..features.matrix import load_matrix

    try:
        fm = load_matrix(p)
        row = fm.rows_of([pk])[0]
        if row < 0:
            return [], "this object has no features yet"
        D, I = index.search(p, fm.X[row][None, :], k + 1)
    except Exception as exc:  # noqa: BLE001 - no features or index yet: say so on the page
        return [], f"{exc.__class__.__name__}: {exc}"
    return [{"pk": int(i), "distance": float(d)} for d, i in zip(D[0], I[0])
            if i >= 0 and int(i) != pk][:k], None


@bp.route("/find")
def find():
    """Go to the object whose id was typed, or list those whose id contains the text."""
    q = request.args.get("q", "").strip()
    hits, partial = find_objects(project(), q, limit=48)
    if len(hits) == 1:
        return redirect(url_for("objects.show", pk=hits[0][0]))
    return render("find.html", q=q, hits=hits, limit=48, partial=partial, scan=SUBSTRING_ROWS)


@bp.route("/<int:pk>")
def show(pk: int):
    p = project()
    info = object_record(p, pk)
    if info is None:
        abort(404, description=f"no object with id {pk}")
    node = info.pop("node")
    k = min(200, max(1, arg_int("k", 24)))
    near, error = neighbours(p, pk, k)
    return render("object.html", obj=info, node=node, near=near, near_error=error, k=k)
