"""Undo the user's last decision; the admin's event log."""

from __future__ import annotations

from flask import Blueprint, g, request

from .. import users
from ..workflow import WorkflowError
from ..workflow import undo as wf
from . import project
from .common import message, render, role_required, toast

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
    msg = f"Undone: {done['action'].replace('_', ' ')}"
    if done.get("skipped"):
        msg += f" ({done['skipped']} objects changed since were left as they are)"
    # the screen showed the state before the undo: reload it
    return toast(msg), 200, {"HX-Refresh": "true"} if request.headers.get("HX-Request") else {}


@bp.route("/events")
@role_required("admin")
def events():
    page = max(0, request.args.get("page", 0, type=int))
    per = 100
    rows = wf.log(project(), limit=per + 1, offset=page * per)
    names = {u["id"]: u["username"] for u in users.list_users(project())}
    return render("events.html", events=rows[:per], names=names, page=page, more=len(rows) > per)
