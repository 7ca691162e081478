"""Label and organise: names with autocomplete, the tree with counts, move, merge, umbrella."""

from __future__ import annotations

import re

from flask import Blueprint, abort, flash, g, request, url_for
from markupsafe import escape

from ..workflow import organise as wf
from ..workflow import validate as wf_validate
from . import project
from .common import count, form_int, int_list, message, node_info, node_title, redirect_to, render, role_required

bp = Blueprint("organise", __name__, url_prefix="/tree")


def init_app(app):
    app.register_blueprint(bp)


@bp.route("/names")
def names():
    """Datalist options for a name field (htmx sends the field's value under the field's name);
    `nodes=1`: only names that nodes carry (fields that pick a node)."""
    prefix = next((v for k, v in request.args.items() if k not in ("list", "nodes")), "")
    list_id = request.args.get("list", "names")
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", list_id):
        abort(400, description="list: not a datalist id")
    names = wf.known_names(project(), prefix, limit=30, imported=request.args.get("nodes") != "1")
    return render("_names.html", names=names, list_id=list_id, htmx=True)


def _nested(rows: list[dict]) -> list[dict]:
    by_id = {r["id"]: dict(r, children=[]) for r in rows}
    top = []
    for r in by_id.values():
        parent = by_id.get(r["parent_id"])
        (parent["children"] if parent else top).append(r)
    for r in by_id.values():
        r["children"].sort(key=lambda c: (-c["n_total"], c["id"]))
    top.sort(key=lambda c: (c["status"] != "approved", -c["n_total"], c["id"]))
    return top


@bp.route("/")
def tree():
    show_candidates = request.args.get("candidates") == "1"
    rows = [r for r in wf.tree(project(), candidates=show_candidates)
            if show_candidates or r["status"] == "approved"]
    return render("tree.html", roots=_nested(rows), show_candidates=show_candidates)


@bp.route("/node/<int:node_id>")
def node(node_id: int):
    info = node_info(node_id)
    page = wf_validate.members(project(), node_id, 0, 48)
    return render("node.html", node=info, page=page)


@bp.route("/node/<int:node_id>/preview")
def preview(node_id: int):
    """A strip of the node's most typical members (loaded when its tree row scrolls into view)."""
    page = wf_validate.members(project(), node_id, 0, 8)
    return render("_preview.html", page=page, htmx=True)


@bp.route("/node/<int:node_id>/name", methods=["POST"])
@role_required("annotator")
def rename(node_id: int):
    typed = request.form.get("name", "").strip()
    new = wf.name(project(), g.user["id"], node_id, typed)
    text = f"Node {node_id} has no name now."
    if new:
        text = f"Node {node_id} is now called {new!r}" + (
            " (the spelling in use)." if new != typed else ".")
    body, status, headers = message(text)
    heading = escape(new or f"Node {node_id}")  # the page's heading follows
    return body + f'<span id="node-name" hx-swap-oob="true">{heading}</span>', status, headers


@bp.route("/node/<int:node_id>/move", methods=["POST"])
@role_required("annotator")
def move(node_id: int):
    typed = request.form.get("parent", "").strip()
    parent = wf.find_node(project(), typed) if typed else None
    wf.move(project(), g.user["id"], node_id, parent)
    flash(f"Node {node_id} is now under {node_title(parent)}." if parent else f"Node {node_id} is now at the top.")
    return redirect_to(url_for("organise.tree"))


@bp.route("/node/<int:node_id>/merge", methods=["POST"])
@role_required("annotator")
def merge(node_id: int):
    into = wf.find_node(project(), request.form.get("into", ""))
    wf.merge(project(), g.user["id"], node_id, into,
             members_version=form_int("members_version"))
    flash(f"Node {node_id} merged into {node_title(into)}.")
    return redirect_to(url_for("organise.node", node_id=into))


@bp.route("/umbrella", methods=["POST"])
@role_required("annotator")
def umbrella():
    nodes = int_list("nodes")
    new_id = wf.umbrella(project(), g.user["id"], nodes, request.form.get("name", ""))
    flash(f"{count(len(nodes), 'node')} grouped under the new node {new_id}.")
    # a new query, not only a new #fragment: the browser must load the page again
    return redirect_to(url_for("organise.tree", new=new_id) + f"#n{new_id}")


@bp.route("/from-object/<int:pk>", methods=["POST"])
@role_required("annotator")
def from_object(pk: int):
    """"More like this": start a new node from one object and grow it."""
    new_id = wf.new_node_from_object(project(), g.user["id"], pk, request.form.get("name") or None)
    flash(f"New node {new_id} holds this object: grow it with the objects like it.")
    return redirect_to(url_for("grow.show", node_id=new_id))
