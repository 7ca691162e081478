"""Helpers shared by the blueprints: rendering full pages or htmx fragments, role checks."""

from __future__ import annotations

import json
import re
from functools import wraps

from flask import abort, g, redirect, render_template, request

from ..labels import node_display
from ..users import may
from . import project  # noqa: F401  (re-exported for the blueprints)
from .converters import MAX_ID


def is_htmx() -> bool:
    """Return whether the request came from htmx (and wants a fragment, not a whole page)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def render(template: str, **ctx) -> str:
    """Render a page template; under htmx its base is the bare fragment layout."""
    ctx.setdefault("htmx", is_htmx())
    return render_template(template, **ctx)


def role_required(role: str):
    """Allow the view only to users with at least `role` (viewer < annotator < admin)."""
    def deco(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not may(g.user["role"], role):
                abort(403, description=f"this needs the {role} role")
            return view(*args, **kwargs)
        return wrapped
    return deco


def int_list(name: str) -> list[int]:
    """Return the ids of a repeated or comma-separated form field (400 for one that is not)."""
    out = []
    for value in request.form.getlist(name):
        for part in value.split(","):
            part = part.strip()
            if part:
                out.append(_bounded(name, part, 0, MAX_ID))
    return out


def arg_int(name: str, default: int | None = None, lo: int = 0, hi: int = MAX_ID,
            form: bool = False) -> int | None:
    """Return the integer query (or, with `form`, form) field `name`, or `default` when it is
    absent or empty; 400 with a clear message when it is not an integer in lo..hi."""
    raw = (request.form if form else request.args).get(name)
    if raw is None or not raw.strip():
        return default
    return _bounded(name, raw.strip(), lo, hi)


def form_int(name: str, default: int | None = None, lo: int = 0, hi: int = MAX_ID) -> int | None:
    """`arg_int` for a form field."""
    return arg_int(name, default, lo, hi, form=True)


def arg_float(name: str, default: float | None = None, lo: float = 0.0, hi: float = 1.0,
              form: bool = False) -> float | None:
    """Return the number in query (or form) field `name`, or `default` when it is absent or
    empty; 400 when it is not a finite number in lo..hi."""
    raw = ((request.form if form else request.args).get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        abort(400, description=f"{name}: {raw[:40]!r} is not a number")
    if not lo <= value <= hi:  # NaN fails this too
        abort(400, description=f"{name}: {raw[:40]} is out of range ({lo:g} to {hi:g})")
    return value


def _bounded(name: str, text: str, lo: int, hi: int) -> int:
    # digits only (an optional minus): int() would take '1_000', ' 7' or a 10,000-digit string
    if not re.fullmatch(r"-?[0-9]{1,20}", text):
        abort(400, description=f"{name}: {text[:40]!r} is not a whole number")
    value = int(text)
    if not lo <= value <= hi:
        abort(400, description=f"{name}: {value} is out of range ({lo} to {hi})")
    return value


def relabels(name: str = "relabel") -> dict[int, str]:
    """Return the labels typed for objects on a grid (JSON {"object id": "label name"})."""
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        abort(400, description=f"{name}: not JSON")
    if not isinstance(data, dict) or not all(
            re.fullmatch(r"[0-9]{1,20}", k) and isinstance(v, str) and v.strip() for k, v in data.items()):
        abort(400, description=f'{name}: expected {{"object id": "label name", ...}}')
    return {_bounded(name, k, 0, MAX_ID): v.strip() for k, v in data.items()}


def message(text: str, kind: str = "info", status: int = 200):
    """Return a response that only shows a message and leaves the page as it is."""
    return toast(text, kind), status, {"HX-Reswap": "none"}


def toast(message: str, kind: str = "info") -> str:
    """Return an out-of-band status message fragment for htmx responses."""
    from markupsafe import escape

    # the inner part only: the live region itself stays, so screen readers announce the change
    return (f'<div id="toast" hx-swap-oob="innerHTML"><span class="{escape(kind)}">'
            f'{escape(message)}</span></div>')


def redirect_to(url: str):
    """Send the browser to `url` (htmx follows HX-Redirect, plain forms the 303)."""
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url}
    return redirect(url, 303)


def node_info(node_id: int) -> dict:
    """Return the fields of a node that the pages show; WorkflowError if there is none."""
    from ..store import Node, User, utcnow
    from ..workflow import WorkflowError

    with project().session() as s:
        n = s.get(Node, node_id)
        if n is None:
            raise WorkflowError(f"node {node_id} not found")
        other = (n.claimed_by is not None and n.claimed_by != g.user["id"]
                 and n.claimed_until is not None and n.claimed_until > utcnow())
        parent = s.get(Node, n.parent_id) if n.parent_id is not None else None
        return {"id": n.id, "name": n.name, "display": node_display(s, n), "status": n.status,
                "parent_name": node_display(s, parent) if parent is not None else None,
                "merged_into": (n.params or {}).get("merged_into") if n.status == "dissolved" else None,
                "n_members": n.n_members,
                "members_version": n.members_version, "parent_id": n.parent_id,
                "claimed_by_other": s.get(User, n.claimed_by).username if other else None}


def node_title(node_id: int) -> str:
    """'copepod (#12)', 'egg<Fish (#13)' where the name repeats, or 'node 12' without a name."""
    from ..store import Node

    with project().session() as s:
        node = s.get(Node, node_id)
        name = node_display(s, node) if node is not None else None
    return f"{name} (#{node_id})" if name else f"node {node_id}"


def gave_typed(n: int) -> str:
    """What a decision did with the objects given a typed label: 'gave 2 objects the label typed'."""
    return f"gave {count(n, 'object')} the label typed"


def count(n, word: str, plural: str | None = None) -> str:
    """'1 object', '2,300 objects' (also the template filter `{{ n|count('object') }}`)."""
    n = int(n or 0)
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"
