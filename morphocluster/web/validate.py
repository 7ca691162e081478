"""Validate seed clusters: the claimed node's members as a grid, approve, remove, dissolve, split, merge."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, request, url_for

from ..workflow import validate as wf
from ..workflow.organise import find_node, namesakes
from . import project
from .common import (arg_int, count, form_int, gave_typed, int_list, message, node_info, node_title,
                     redirect_to, relabels, render, role_required, toast)

bp = Blueprint("validate", __name__, url_prefix="/validate")


def init_app(app):
    app.register_blueprint(bp)


def _ctx(node_id: int) -> dict:
    node = node_info(node_id)
    ok = g.user["role"] != "viewer" and node["status"] in ("candidate", "approved")
    return {"node": node, "relabel_ok": ok}


def _version():
    return form_int("members_version")


@bp.route("/", endpoint="next")
def next_node():
    if g.user["role"] == "viewer":  # viewers look without claiming anything
        from ..workflow.progress import queue

        todo = queue(project(), limit=1)["validate"]
        node_id = todo[0]["id"] if todo else None
    else:
        node_id = wf.next_node(project(), g.user["id"])
    if node_id is None:
        return render("validate_empty.html")
    return redirect(url_for("validate.show", node_id=node_id))


@bp.route("/<int:node_id>")
def show(node_id: int):
    if g.user["role"] != "viewer":  # opened from the queue or a link: claim it as "next" would
        wf.take(project(), g.user["id"], node_id)
    size = current_app.config["PAGE_SIZE"]
    page = wf.members(project(), node_id, 0, size)
    return render("validate.html", **_ctx(node_id), page=page, size=size)


@bp.route("/<int:node_id>/members")
def members(node_id: int):
    """One more page of thumbnails (htmx, loaded when the previous page's end is revealed)."""
    size = current_app.config["PAGE_SIZE"]
    offset = arg_int("offset", 0)
    page = wf.members(project(), node_id, offset, size)
    shown_version = arg_int("v")
    if shown_version is not None and shown_version != page.members_version:
        return render("_changed.html", url=url_for("validate.show", node_id=node_id), htmx=True)
    return render("_members.html", **_ctx(node_id), page=page, size=size, htmx=True)


@bp.route("/<int:node_id>/approve", methods=["POST"])
@role_required("annotator")
def approve(node_id: int):
    seen = int_list("seen") or None
    moved, marked = relabels(), int_list("pks")
    name = wf.approve(project(), g.user["id"], node_id, name=request.form.get("name") or None,
                      seen_pks=seen, members_version=_version(), moved=moved, removed=marked)
    removed = len(set(marked) - set(moved))
    same = namesakes(project(), node_id) if name else []
    flash(f"Node {node_id} approved" + (f" as {name}" if name else " (no name yet)")
          + (f"; {removed} selected removed" if removed else "")
          + (f"; {gave_typed(len(moved))}" if moved else "") + "."
          + (f" {name!r} also names node {', '.join(f'#{i}' for i in same)}: one class (to keep one "
             "node, merge them on a node page)." if same else ""))
    if request.form.get("then") == "grow":
        return redirect_to(url_for("grow.show", node_id=node_id))
    return redirect_to(url_for("validate.next"))


@bp.route("/<int:node_id>/remove", methods=["POST"])
@role_required("annotator")
def remove(node_id: int):
    pks, moved = int_list("pks"), relabels()
    from_rank = form_int("from_rank")
    if from_rank is not None:
        if moved:
            return message("Remove selected first: it takes the labels typed; then remove from here on.",
                           "error")
        n = wf.remove_from(project(), g.user["id"], node_id, from_rank,
                           members_version=_version())
    elif pks or moved:
        n = wf.remove(project(), g.user["id"], node_id, pks, members_version=_version(), moved=moved)
    else:
        return message("Select objects first (click, shift-click for a range).", "error")
    text = _removed(n - len(moved), len(moved))
    if node_info(node_id)["n_members"] == 0:  # nothing left to validate here: on to the next
        flash(f"Node {node_id} is empty now: {text}")
        return redirect_to(url_for("validate.next"))
    return _reshow(node_id, text)


def _removed(n: int, n_typed: int) -> str:
    parts = ([f"removed {count(n, 'object')}"] if n or not n_typed else []) + (
        [gave_typed(n_typed)] if n_typed else [])
    return ", ".join(parts).capitalize() + "."


@bp.route("/<int:node_id>/dissolve", methods=["POST"])
@role_required("annotator")
def dissolve(node_id: int):
    wf.dissolve(project(), g.user["id"], node_id, members_version=_version())
    flash(f"Node {node_id} dissolved: its objects are back in the pool.")
    return redirect_to(url_for("validate.next"))


@bp.route("/<int:node_id>/split", methods=["POST"])
@role_required("annotator")
def split(node_id: int):
    new_id = wf.split(project(), g.user["id"], node_id, members_version=_version())
    return _reshow(node_id, f"Split: the other part is now node {new_id}.")


@bp.route("/<int:node_id>/merge", methods=["POST"])
@role_required("annotator")
def merge(node_id: int):
    typed = request.form.get("into", "").strip()
    if not typed:
        return message("Type the name or id of the node to merge into.", "error")
    into = find_node(project(), typed)
    wf.merge(project(), g.user["id"], node_id, into, members_version=_version())
    flash(f"Node {node_id} merged into {node_title(into)}.")
    return redirect_to(url_for("validate.next"))


def _reshow(node_id: int, message: str):
    size = current_app.config["PAGE_SIZE"]
    page = wf.members(project(), node_id, 0, size)
    body = render("validate.html", **_ctx(node_id), page=page, size=size, htmx=True)
    return body + toast(message)
