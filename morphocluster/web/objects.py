"""Object page: the image, its metadata, where it is filed and its nearest neighbours."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for

from ..labels import object_record
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


SUBSTRING_ROWS = 20_000  # newest objects looked through for a part in the middle of an id


def find_objects(p, text: str, limit: int = 48, scan: int = SUBSTRING_ROWS):
    """Return ((Object.id, object_id), ...) that `text` names, and whether the search was partial.

    The object of that id (or internal id, `#12`); else those whose id starts with it, ignoring
    case (an index walk, among all objects); else, to fill up to `limit`, those whose id contains
    it among the newest `scan` objects only (partial: True when there are more): a middle part is
    no index lookup, and reading 10 M ids on every search is not worth it.
    """
    from sqlalchemy import func, select

    from ..store import Object

    text = (text or "").strip()
    if not text:
        return [], False
    with p.session() as s:
        hit = s.execute(select(Object.id, Object.object_id).where(Object.object_id == text)).all()
        # '#12' is an internal id: ASCII digits that a 64-bit id column can hold
        if not hit and text.startswith("#") and text[1:].isascii() and text[1:].isdigit() \
                and len(text) <= 20 and int(text[1:]) < 2**63:
            hit = s.execute(select(Object.id, Object.object_id).where(Object.id == int(text[1:]))).all()
        if hit:
            return [tuple(r) for r in hit], False
        like = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if s.get_bind().dialect.name == "sqlite":  # LIKE ignores ASCII case: the NOCASE index
            q = (select(Object.id, Object.object_id).where(Object.object_id.like(like, escape="\\"))
                 .order_by(Object.object_id.collate("NOCASE")))
        else:  # PostgreSQL: the lower(object_id) text_pattern_ops index
            q = select(Object.id, Object.object_id).where(
                func.lower(Object.object_id).like(func.lower(like), escape="\\"))
        rows = sorted((tuple(r) for r in s.execute(q.limit(limit))), key=lambda r: r[1].casefold())
        if len(rows) >= limit:
            return rows, False
        newest = s.execute(select(Object.id, Object.object_id).order_by(Object.id.desc())
                           .limit(scan + 1)).all()
    needle, have = text.casefold(), {r[0] for r in rows}
    for pk, oid in newest[:scan]:
        if pk not in have and needle in oid.casefold():
            rows.append((pk, oid))
            if len(rows) >= limit:
                break
    return rows, len(newest) > scan and len(rows) < limit


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
