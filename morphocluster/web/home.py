"""Home page: progress of the project, the 2-D map of the feature space, the work queue."""

from __future__ import annotations

import colorsys
import threading

import numpy as np
from flask import Blueprint, current_app, redirect, request, url_for
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException

from ..store import ConcurrentChange, Event, Node
from ..workflow.progress import progress, queue
from . import project
from .common import count, message, render

bp = Blueprint("home", __name__)
_MAP_CACHE: dict = {}
_MAP_LOCK = threading.Lock()


def init_app(app):
    from ..workflow import WorkflowError

    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _error)
    app.register_error_handler(WorkflowError, _workflow_error)
    app.register_error_handler(ConcurrentChange, _workflow_error)
    app.add_template_filter(count, "count")


def _error(exc: HTTPException):
    return render("error.html", code=exc.code, name=exc.name, description=exc.description), exc.code


def _workflow_error(exc):
    """A refused decision (claimed by someone else, changed meanwhile, ...): say why, change nothing."""
    code = 404 if "not found" in str(exc) else 409
    if request.headers.get("HX-Request"):
        return message(str(exc), "error", code)
    return render("error.html", code=code, name="Not found" if code == 404 else "Conflict",
                  description=str(exc)), code


@bp.route("/")
def index():
    p = project()
    return render("home.html", progress=progress(p), queue=queue(p))


@bp.route("/node/<int:node_id>")
def node(node_id: int):
    """Open a node where it can be worked on: validate a candidate, grow an approved node."""
    with project().session() as s:
        n = s.get(Node, node_id)
        status = n.status if n else None
    if status == "candidate":
        return redirect(url_for("validate.show", node_id=node_id))
    if status == "approved":
        return redirect(url_for("grow.show", node_id=node_id))
    return redirect(url_for("organise.tree"))


def _colour(node_id: int) -> str:
    h = (node_id * 0.618033988749895) % 1.0  # golden-ratio hues keep neighbours apart
    r, g, b = colorsys.hls_to_rgb(h, 0.45, 0.65)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _map_key(p) -> tuple:
    """What the map depends on: the feature set, the nodes and every decision since."""
    with p.session() as s:
        return (str(p.root), p.config.get("active_features"), s.scalar(select(func.max(Node.id))),
                s.scalar(select(func.sum(Node.members_version))), s.scalar(select(func.max(Event.id))))


def map_points(p, n_max: int) -> list[dict]:
    """Return up to n_max map points (x, y in 0..1000, node id, status, label, colour)."""
    from ..map2d import map_2d

    m = map_2d(p)
    xy = np.asarray(m["xy"], dtype=np.float64)
    nodes = np.asarray(m["node_ids"]) if m.get("node_ids") is not None else np.full(len(xy), -1)
    if len(xy) > n_max:
        keep = np.random.default_rng(0).choice(len(xy), n_max, replace=False)
        xy, nodes = xy[keep], nodes[keep]
    if len(xy):
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        xy = 20 + 960 * (xy - lo) / np.where(hi > lo, hi - lo, 1)
    with p.session() as s:
        about = {i: (st, nm) for i, st, nm in s.execute(select(Node.id, Node.status, Node.name))}
    points = []
    for (x, y), n in zip(xy, nodes):
        n = int(n) if n is not None and n >= 0 else None
        status, name = about.get(n, (None, None))
        points.append({"x": round(float(x), 1), "y": round(float(y), 1), "node": n,
                       "status": status, "label": name or (f"node {n}" if n else None),
                       "colour": _colour(n) if n else "#b9b9b9"})
    return points


@bp.route("/map")
def map_():
    """The map as an inline SVG fragment (loaded by htmx after the page), cached until a change."""
    p = project()
    key = _map_key(p)
    with _MAP_LOCK:
        html = _MAP_CACHE.get(key)
        if html is None:
            try:
                points, error = map_points(p, current_app.config["MAP_POINTS"]), None
            except Exception as exc:  # noqa: BLE001 - no features yet, no clustering yet, ...
                points, error = [], f"{exc.__class__.__name__}: {exc}"
            html = render("_map.html", points=points, error=error,
                          node_url=url_for("home.node", node_id=0)[:-1])
            if error is None:
                _MAP_CACHE.clear()
                _MAP_CACHE[key] = html
    return html
