"""Sort suggestions: the labels with open suggestions, and screens of one label's suggestions."""

from __future__ import annotations

import re

from flask import Blueprint, abort, flash, g, request, url_for

from ..workflow import WorkflowError
from ..workflow import suggest as wf
from . import project
from .common import (arg_float, count, form_int, int_list, message, node_info, redirect_to, relabels, render,
                     role_required, toast)
from .converters import MAX_ID

bp = Blueprint("suggest", __name__, url_prefix="/suggest")

THRESHOLDS = (0.99, 0.98, 0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)


@bp.route("/")
def index():
    """Labels with open suggestions, most confident first; the model's state."""
    return _index()


def _index(**ctx):
    state = wf.refresh(project())
    missing = wf.missing_labels(project(), state)
    rows = wf.overview(project(), state) if state else []
    return render("suggest.html", rows=rows, status=wf.status(project()),
                  n_unknown=wf.n_unknown(state) if state else 0, state=state,
                  far_too=wf.far_too(project()), missing=missing, **ctx)


@bp.route("/far", methods=["POST"])
@role_required("annotator")
def far():
    """Include the objects far from every label in the suggestions, or leave them out again."""
    on = request.form.get("on") == "1"
    wf.set_far_too(project(), on)
    flash("Objects far from every label are suggested too now." if on else
          "Objects far from every label are left for the next clustering round again.")
    return redirect_to(url_for("suggest.index"))


@bp.route("/adopt", methods=["POST"])
@role_required("annotator")
def adopt():
    """Create approved nodes for the labels of a model from elsewhere that have none here."""
    made = wf.adopt_missing(project(), g.user["id"])
    text = (f"Created nodes for {len(made)} labels of the model." if made
            else "Every label of the model has a node here.")
    if not request.headers.get("HX-Request"):
        flash(text)
        return redirect_to(url_for("suggest.index"))
    return _index(htmx=True) + toast(text)


@bp.route("/status")
def model_status():
    """The model's state as a fragment (polled while it trains)."""
    state = wf.refresh(project())
    status = wf.status(project())
    if request.args.get("then") == "reload" and status["ready"] and not status["training"]:
        # polled while it trained: the page's label table is stale now, so load it again
        return "", 200, {"HX-Refresh": "true"}
    return render("suggest_status.html", status=status, state=state, htmx=True)


@bp.route("/retrain", methods=["POST"])
@role_required("annotator")
def retrain():
    wf.refresh(project(), force=True)
    return message("Retraining the suggestion model in the background.")


def _screen(node_id: int, check: float | None = None):
    state = wf.refresh(project())
    if state is None:
        return None, None
    band = (check, 2.0) if check is not None else None
    return state, wf.screen(project(), node_id, 0, wf.SCREEN, state=state, band=band)


@bp.route("/<int:node_id>")
def show(node_id: int):
    """One screen of the node's suggestions: click the ones that do not belong, confirm the rest.

    With `?check=T`: a random sample of the suggestions with confidence >= T, to check what
    accepting them all would give.
    """
    check = arg_float("check")
    state, scr = _screen(node_id, check)
    threshold = check if check is not None else arg_float("threshold", 0.95)
    preview = wf.accept_preview(project(), node_id, threshold, state) if state else None
    return render("suggest_screen.html", node=node_info(node_id), screen=scr, status=wf.status(project()),
                  preview=preview, thresholds=THRESHOLDS, check=check)


@bp.route("/<int:node_id>/preview")
def preview(node_id: int):
    """How many suggestions an accept-above would take and their estimated precision."""
    threshold = arg_float("threshold", 0.95)
    p = wf.accept_preview(project(), node_id, threshold)
    return render("suggest_preview.html", preview=p, node_id=node_id, htmx=True)


@bp.route("/<int:node_id>/decide", methods=["POST"])
@role_required("annotator")
def decide(node_id: int):
    """Reject the selected objects for this label; the other shown ones join the node (validated).

    `moves` ("object:node,..."): objects put straight into another node (their runner-up label);
    `relabel` (JSON {"object": "label name"}): objects given a label the annotator typed.
    """
    shown = int_list("shown")
    if not shown:
        return message("Nothing was shown to confirm.", "error")
    check = arg_float("check", form=True)
    moves = {**_moves(), **relabels()}
    r = wf.decide(project(), g.user["id"], node_id, shown, int_list("pks"),
                  members_version=form_int("members_version"),
                  band=(check, 2.0) if check is not None else None, moved=moves)
    text = f"Confirmed {r['confirmed']}, rejected {r['rejected']}" + (
        f", moved {r['moved']} to their other label" if r["moved"] else "") + (
        f" ({r['new_nodes']} new)." if r["new_nodes"] else ".")
    if check is not None:  # keep the checked predictions until the annotator accepts or moves on
        n = r["confirmed"] + r["rejected"] + r["moved"]
        return _reshow(node_id, text + f" Sample of confidence ≥ {check:g}: "
                       f"{r['confirmed']} of {n} right.", threshold=check)
    wf.refresh(project())
    return _reshow(node_id, text)


def _moves() -> dict[int, int]:
    out = {}
    for value in request.form.getlist("moves"):
        for part in filter(None, (x.strip() for x in value.split(","))):
            pk, _, node = part.partition(":")
            if not (re.fullmatch(r"[0-9]{1,19}", pk) and re.fullmatch(r"[0-9]{1,19}", node)
                    and max(int(pk), int(node)) <= MAX_ID):
                abort(400, description=f"moves: {part[:60]!r} is not object:node")
            out[int(pk)] = int(node)
    return out


@bp.route("/<int:node_id>/accept", methods=["POST"])
@role_required("annotator")
def accept(node_id: int):
    """Accept every open suggestion of the label at or above the chosen confidence (predicted)."""
    threshold = request.form.get("threshold", type=float)
    if threshold is None or not 0.0 <= threshold <= 1.0:  # NaN too
        return message("Choose a confidence between 0 and 1.", "error")
    try:
        n = wf.accept_above(project(), g.user["id"], node_id, threshold,
                            members_version=form_int("members_version"),
                            counted=form_int("counted"))
    except wf.CountChanged as exc:  # the model retrained, or others decided, since the count
        return _reshow(node_id, f"The suggestions changed since {count(exc.counted, 'was', 'were')} "
                       f"counted: {count(exc.now, 'suggestion')} ≥ {threshold:g} now. Accept again to "
                       "take them.", threshold=threshold, error=True)
    wf.refresh(project())
    return _reshow(node_id, f"Accepted {count(n, 'suggestion')} with confidence ≥ {threshold:g} (predicted).",
                   threshold=threshold)


def _reshow(node_id: int, text: str, threshold: float = 0.95, error: bool = False):
    state, scr = _screen(node_id)
    if scr is not None and not scr.pks:
        flash(text)
        return redirect_to(url_for("suggest.index"))
    preview = wf.accept_preview(project(), node_id, threshold, state) if state else None
    # the next ordinary screen (a sample check is over once decided), the threshold kept
    return render("suggest_screen.html", node=node_info(node_id), screen=scr, status=wf.status(project()),
                  preview=preview, thresholds=THRESHOLDS, check=None, htmx=True) + toast(text, "error" if error else "info")


__all__ = ["bp", "WorkflowError"]
