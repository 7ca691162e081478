"""Nodes for labels given by name: the labels of a suggestion model from another project (a new
instrument) that name no node here, so that their suggestions can be sorted, and the label an
annotator types for a wrong object on any screen (`move_to_labels`)."""

from __future__ import annotations

from sqlalchemy import select

from ..store import Node, utcnow
from ..suggest.data import label_targets
from .suggest_state import EXTERNAL
from ._core import Change, WorkflowError, check_claim, free_of_approved, get_node, name_in_use


def adopt_labels(project, user_id, labels) -> dict:
    """Create approved nodes for labels (paths 'a>b') the project has no node for yet.

    For a model trained elsewhere (a new instrument). One event ('suggest_adopt'); return
    label -> node id of every label given.
    """
    with project.transaction() as s:
        have = label_targets(s)[1]
        ch = Change(s, user_id)
        out = {lab: label_node(s, ch, user_id, lab, have) for lab in labels}
        if ch.created:
            ch.finish("suggest_adopt", {"n": len(ch.created)}, bump=False)
    return out


def label_node(s, ch: Change, user_id, lab: str, have: dict, origin: str = "suggest") -> int:
    """Return the id of the approved node that carries label `lab` (a path 'a>b'), creating
    the missing nodes of its path through `ch` (params {"from": origin}); `have` (label -> node
    id) is kept up to date."""
    if lab in have:
        return have[lab]
    parent = None
    for part in str(lab).split(">"):
        part = part.strip()
        under = Node.parent_id.is_(None) if parent is None else Node.parent_id == parent
        q = select(Node).where(Node.name == part, Node.status == "approved", under)
        node = s.scalars(q.order_by(Node.id)).first()
        if node is None:  # spelled as a candidate node may already spell it ('Oithona')
            part = name_in_use(s, part)
            node = ch.create_node(name=part, parent_id=parent, status="approved",
                                  approved_by=user_id, approved_at=utcnow(), params={"from": origin})
        parent = node.id
    have[lab] = parent
    return parent


def label_for_name(s, name: str, targets=None) -> tuple[dict, str]:
    """Return (label -> node id, the label that `name` means): a label path, or the short name
    a node is shown by ('copepod', or 'copepod<calanoida' where names repeat), the same ignoring
    case, or else `name` itself, a label still to be made (`label_node`). `targets`: what
    `label_targets(s)` returned, for callers that look up several names."""
    _, have, display = targets or label_targets(s)
    name = str(name).strip()
    if not name or name.startswith("#"):
        raise WorkflowError(f"{name!r} is not a label name")
    if name in have:
        return have, name
    for same in (str, str.casefold):  # as the name fields show it ('egg<Fish', 'egg<fish')
        for lab, shown in display.items():
            if same(shown) == same(name) and lab in have:
                return have, lab
    for same in (str, str.casefold):  # exactly, else ignoring case ('Copepoda' is 'copepoda')
        hits = sorted(lab for lab in have if same(lab) == same(name)
                      or same(lab.rsplit(">", 1)[-1]) == same(name))
        if len(hits) > 1:
            shown = [display.get(lab, lab) for lab in hits[:4]]
            raise WorkflowError(f"{name!r} names several labels: type one of {', '.join(shown)}")
        if hits:
            return have, hits[0]
    return have, name


def targets_arg(moved) -> dict:
    """Normalise a `moved` argument: object id -> node id (int) or label name (str)."""
    return {int(k): (v if isinstance(v, str) else int(v)) for k, v in (moved or {}).items()}


def resolve_targets(s, ch: Change, user_id, moved: dict) -> dict[int, int]:
    """Turn the label names among `moved`'s targets (object -> node id or name) into node ids,
    making the missing nodes through `ch` (so the decision's undo takes them away)."""
    node_of, targets = {}, None
    for name in sorted({v for v in moved.values() if isinstance(v, str)}):
        targets = targets or label_targets(s)  # read once; label_node adds what it makes to it
        have, lab = label_for_name(s, name, targets)
        node_of[name] = label_node(s, ch, user_id, lab, have, origin="typed")
    return {pk: node_of[v] if isinstance(v, str) else v for pk, v in moved.items()}


def split_own(s, moved: dict, node_id: int) -> tuple[dict, list[int]]:
    """Split `moved` into the objects given another label and those given the label of
    `node_id` itself (typed where they are shown: they belong there after all)."""
    own, rest, targets = [], {}, None
    for pk, target in moved.items():
        if isinstance(target, str):
            targets = targets or label_targets(s)
            try:
                have, lab = label_for_name(s, target, targets)
            except WorkflowError:
                rest[pk] = target  # refused later, with the reason
                continue
            target = have.get(lab, target)
        if target == int(node_id):
            own.append(pk)
        else:
            rest[pk] = target
    return rest, sorted(own)


def move_to_labels(s, ch: Change, user_id, moved: dict, away_from: int) -> dict[int, int]:
    """Put objects straight into other labels' approved nodes as 'validated' (`moved`: object ->
    node id or label name; new labels get nodes); return object -> node id. None of them may be
    in an approved node already, nor go to `away_from`, the node they are rejected for."""
    moved = resolve_targets(s, ch, user_id, moved)
    own = sorted(p for p, t in moved.items() if t == int(away_from))
    if own:
        raise WorkflowError(f"object {own[0]} was given this node's own label: to keep it here, leave "
                            "it unmarked (✎ and an empty label clear what was typed)")
    free_of_approved(ch, list(moved))
    for target in sorted(set(moved.values())):
        node = get_node(s, target, ("approved",))
        check_claim(node, user_id)
        ch.assign([p for p, t in moved.items() if t == target], node.id, "validated")
    return moved


def missing_labels(project, state) -> list[str]:
    """Return the labels of a model from another project that name no approved node here.

    Their suggestions never show (`node_id` -1) until `adopt_missing` creates the nodes.
    Unnamed labels ('#<node id>' of the other project) are left out: they name nothing.
    """
    if state is None or state.stamp != EXTERNAL:
        return []
    with project.session() as s:
        have = label_targets(s)[1]
    return sorted(str(c) for c in state.model.classes_
                  if str(c) not in have and not str(c).startswith("#"))
