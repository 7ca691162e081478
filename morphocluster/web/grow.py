"""Grow an approved node: ranked candidates in screens of at most 50, direct or by page search."""

from __future__ import annotations

import threading

from flask import Blueprint, abort, current_app, g, redirect, request, url_for

from ..workflow import grow as wf
from ..workflow import grow_search as gs
from . import project
from .common import (count, form_int, gave_typed, int_list, message, node_info, relabels, render,
                     role_required, toast)

bp = Blueprint("grow", __name__, url_prefix="/grow")

def init_app(app):
    app.register_blueprint(bp)


def _size() -> int:
    return min(50, int(current_app.config["GROW_PAGE_SIZE"]))


@bp.route("/", endpoint="next")
def next_node():
    from ..workflow.progress import queue

    todo = queue(project(), limit=1)["grow"]
    if not todo:
        return render("grow_empty.html")
    return redirect(url_for("grow.show", node_id=todo[0]["id"]))


@bp.route("/<int:node_id>")
def show(node_id: int):
    """Direct method: click the first object that does not belong."""
    page = wf.candidates(project(), node_id, 0, _size())
    return render("grow.html", node=node_info(node_id), page=page, mode="direct")


@bp.route("/<int:node_id>/until", methods=["POST"])
@role_required("annotator")
def until(node_id: int):
    """Accept everything above the clicked object; reject the clicked one."""
    rank = form_int("rank")
    if rank is None:
        return message("Click the first object that does not belong.", "error")
    if relabels():
        return message("Labels were typed on this screen: Reject selected or Accept whole screen "
                       "takes them; then click the first wrong object.", "error")
    shown, version, marked = _shown()
    wrong_pk, held = form_int("wrong_pk"), []
    n = wf.accept_until(project(), g.user["id"], node_id, rank, shown_pks=shown, wrong_pk=wrong_pk,
                        members_version=version, rejected=marked, held=held)
    return _reshow(node_id, f"Accepted {n}, rejected {len(set(marked) | {wrong_pk} - {None})}."
                   + _held(held))


def _shown() -> tuple[list[int], int, list[int]]:
    """Return the objects the screen showed, the node's members version it showed and the
    objects selected on it; 400 when the first two are missing: the server takes only what
    a screen showed."""
    shown, version = int_list("shown"), form_int("members_version")
    if not shown or version is None:
        abort(400, description="This decision needs the objects the screen showed and the node's "
                               "members version (shown, members_version): reload the page.")
    return shown, version, int_list("pks")


def _held(held: list[int]) -> str:
    return (f" {count(len(held), 'object')} left where they are: their cluster is being validated "
            "by someone else." if held else "")


@bp.route("/<int:node_id>/accept", methods=["POST"])
@role_required("annotator")
def accept(node_id: int):
    """Accept the screen: selected objects are rejected, those given a label go there."""
    (shown, version, selected), moved, held = _shown(), relabels(), []
    n = wf.accept(project(), g.user["id"], node_id, shown, shown_pks=shown, members_version=version,
                  moved=moved, rejected=selected, held=held)
    moved = set(moved) - set(held)
    done = [f"Accepted {n}"] + ([f"rejected {len(set(selected) - moved)}"] if selected else []) + (
        [gave_typed(len(moved))] if moved else [])
    return _reshow(node_id, ", ".join(done) + "." + _held(held))


@bp.route("/<int:node_id>/reject", methods=["POST"])
@role_required("annotator")
def reject(node_id: int):
    pks, moved = int_list("pks"), relabels()
    if not pks and not moved:
        return message("Select objects to reject first (Ctrl-click).", "error")
    n = wf.reject(project(), g.user["id"], node_id, pks, moved=moved)
    parts = ([f"Rejected {n - len(moved)}"] if n > len(moved) else []) + (
        [gave_typed(len(moved))] if moved else [])
    return _reshow(node_id, ", ".join(parts).capitalize() + ".")


def _reshow(node_id: int, message: str):
    page = wf.candidates(project(), node_id, 0, _size())
    return render("grow.html", node=node_info(node_id), page=page, mode="direct", htmx=True) + toast(message)


# --- page search: exponential search, then bisection ------------------------------------------
# The search of each (user, node) lives in the project database (workflow.grow_search.save_search),
# so a restart keeps the pages already judged; the lock keeps this process's requests in order.
_LOCK = threading.Lock()


@bp.route("/<int:node_id>/search")
def search(node_id: int):
    """The page waiting for a verdict. A GET changes nothing: a search is saved by its verdicts,
    and started again only by a POST (restart)."""
    with _LOCK:
        s = gs.load_search(project(), g.user["id"], node_id, _size())
        page = s.next_page()
    return render("grow.html", node=node_info(node_id), page=page, mode="search", search=s)


@bp.route("/<int:node_id>/search/restart", methods=["POST"])
@role_required("annotator")
def restart(node_id: int):
    """Forget the pages judged so far and start the search from the first page."""
    p, uid = project(), g.user["id"]
    with _LOCK:
        gs.drop_search(p, uid, node_id)
        s = gs.load_search(p, uid, node_id, _size())
        page = s.next_page()
        gs.save_search(p, uid, s)
    html = render("grow.html", node=node_info(node_id), page=page, mode="search", search=s, htmx=True)
    return html + toast("The page search starts again from the first page."), 200, {
        "HX-Push-Url": url_for("grow.search", node_id=node_id)}


@bp.route("/<int:node_id>/search/judge", methods=["POST"])
@role_required("annotator")
def judge(node_id: int):
    p, uid = project(), g.user["id"]
    probe, shown = form_int("probe"), int_list("shown")
    with _LOCK:
        s = gs.load_search(p, uid, node_id, _size())
        waiting = s.next_page()  # the page a verdict is for now (a search not saved yet: page 1)
        note = None
        if s.restarted:  # the node changed since, so that verdict was on another page
            note = "The node changed since that page was shown; the search starts again."
        elif waiting is None or (probe is not None and probe != s.probe):
            note = "That page was judged already; this is the page to judge now."
        elif shown and shown != waiting.pks:
            note = "The objects of this page changed since it was shown; judge it again."
        else:
            s.judge(request.form.get("ok") == "1", probe=probe)
        page = s.next_page()
        gs.save_search(p, uid, s)
    html = render("grow.html", node=node_info(node_id), page=page, mode="search", search=s, htmx=True)
    return html + (toast(note) if note else "")


@bp.route("/<int:node_id>/search/commit", methods=["POST"])
@role_required("annotator")
def commit(node_id: int):
    p, uid = project(), g.user["id"]
    with _LOCK:
        s = gs.load_search(p, uid, node_id, _size())
        if not s.done:  # it started over: the node changed since its pages were judged
            page = s.next_page()
            gs.save_search(p, uid, s)
            html = render("grow.html", node=node_info(node_id), page=page, mode="search", search=s,
                          htmx=True)
            return html + toast("The node changed since those pages were judged (someone grew it); "
                                "nothing was accepted, and the search starts again.", "error")
        n = s.commit(uid)
        gs.drop_search(p, uid, node_id)
    # the direct screen follows: its address too, so that a reload does not restart the search
    return _reshow(node_id, f"Accepted {n} objects above the boundary."), 200, {
        "HX-Push-Url": url_for("grow.show", node_id=node_id)}
