"""Undo the user's last decision; the admin's event log."""

from __future__ import annotations

import re
from urllib.parse import urlparse

from flask import Blueprint, flash, g, request, url_for

from .. import users
from ..workflow import WorkflowError
from ..workflow import undo as wf
from . import project
from .common import arg_int, count, message, node_info, render, role_required, toast

bp = Blueprint("history", __name__)


def init_app(app):
    app.register_blueprint(bp)


@bp.route("/undo", methods=["POST"])
@role_required("annotator")
def undo():
    try:
        done = wf.undo_last(project(), g.user["id"])
    except WorkflowError as exc:
        return message(str(exc), "error")
    msg = f"Undone: {done['action'].replace('_', ' ')}" + (
        f" (node {done['node']})" if isinstance(done.get("node"), int) else "")
    kept = [count(done[k], w) for k, w in (("skipped", "object"), ("skipped_fields", "node field"))
            if done.get(k)]
    if kept:
        msg += f" (changed since by someone else, so left as they are: {' and '.join(kept)})"
    if not request.headers.get("HX-Request"):
        return toast(msg), 200
    # the screen showed the state before the undo: reload it (or leave a node the undo took
    # away), and show the message on the page that loads
    flash(msg)
    there = _page_after_undo(request.headers.get("HX-Current-URL", ""))
    return "", 200, {"HX-Redirect": there} if there else {"HX-Refresh": "true"}


def _page_after_undo(current_url: str) -> str | None:
    """Return where to go when the current page is about a node the undo removed or changed so
    that the page no longer applies (None: reload the current page)."""
    m = re.match(r"/(validate|grow|tree/node|suggest)/([0-9]{1,18})(?![0-9])", urlparse(current_url).path)
    if not m:
        return None
    try:
        node = node_info(int(m[2]))
    except WorkflowError:
        return url_for("home.index")
    if node["status"] == "dissolved":
        return url_for("home.index")
    if m[1] == "grow" and node["status"] != "approved":
        return url_for("validate.show", node_id=node["id"])
    return None


@bp.route("/events")
@role_required("admin")
def events():
    per = 100
    page = arg_int("page", 0, hi=10**9)
    rows = wf.log(project(), limit=per + 1, offset=page * per)
    names = {u["id"]: u["username"] for u in users.list_users(project())}
    return render("events.html", events=rows[:per], names=names, page=page, more=len(rows) > per)
