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
    """The event log, newest first, 100 a page; `before`/`after` an event id (keyset pages: each
    reads its 100 rows by the primary key, however far back, where an OFFSET would walk them)."""
    per = 100
    arg_int("page", 0, hi=10**9)  # old links: still checked, now shows the newest page
    before, after = arg_int("before"), arg_int("after")
    rows, newer, older = events_page(project(), per, before=before, after=after)
    names = {u["id"]: u["username"] for u in users.list_users(project())}
    return render("events.html", events=rows, names=names, newer=newer, older=older)


def events_page(p, per: int, before: int | None = None, after: int | None = None):
    """Return (events newest first, id for a "newer" link or None, id for an "older" link or None)."""
    from sqlalchemy import select

    from ..store import Event

    with p.session() as s:
        q = select(Event)
        if after is not None:  # the page just above `after`, read upwards, then turned round
            found = list(reversed(s.scalars(q.where(Event.id > after).order_by(Event.id)
                                            .limit(per + 1)).all()))
            more_newer, found = len(found) > per, found[-per:]
            more_older = bool(found)
        else:
            if before is not None:
                q = q.where(Event.id < before)
            found = s.scalars(q.order_by(Event.id.desc()).limit(per + 1)).all()
            more_older, found = len(found) > per, found[:per]
            more_newer = before is not None
        rows = [{"id": e.id, "user_id": e.user_id, "created_at": e.created_at, "action": e.action,
                 "undone_by": e.undone_by,
                 "payload": {k: v for k, v in (e.payload or {}).items() if k != "reverse"}}
                for e in found]
    newer = rows[0]["id"] if rows and more_newer else None
    older = rows[-1]["id"] if rows and more_older else None
    return rows, newer, older
