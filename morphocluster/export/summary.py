"""What an export will hold, before it is made: objects, labels, unlabelled, validated vs predicted.

`summarize(project, format, labels, with_images, status)` counts with two queries (objects; members
per node and membership status, one grouped scan: 0.6 s at 1 M members on SQLite), never a loop
over objects, kept until the project changes (`counts`), and follows the writers' rules: a label is the name of an approved node (or its nearest named ancestor); the tree ZIP
holds every node that is not dissolved, and counts members of approved nodes as labelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import threading

from sqlalchemy import case, func, select

from . import SUFFIX, check_options

IMAGES = {"ecotaxa": None, "imagefolder": True}  # None: on request; formats not named: none
_CACHE: dict = {}  # (project root, database) -> (signature, objects, member counts)
_LOCK = threading.Lock()


@dataclass
class ExportSummary:
    format: str
    labels: str
    status: str                # 'any' (validated and predicted labels) | 'validated' (only those)
    with_images: bool          # as the file will be made (imagefolder always, csv never, ...)
    suffix: str
    n_objects: int = 0         # objects the file will hold (rows, or images for imagefolder)
    n_labelled: int = 0
    n_unlabelled: int = 0
    n_validated: int = 0       # of the labelled: a human saw them
    n_predicted: int = 0       # of the labelled: accepted without being shown
    n_labels: int = 0          # distinct labels (tree: nodes written)
    n_unnamed: int = 0         # objects of approved nodes that no name labels
    n_unseen: int = 0          # predicted objects that status='validated' writes unlabelled
    problem: str | None = None  # why the export cannot be made as asked
    notes: list = field(default_factory=list)

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def images_for(format: str, with_images: bool) -> bool:
    """Whether a file of `format` carries images when they were asked for or not."""
    rule = IMAGES.get(format, False)
    return bool(with_images) if rule is None else rule


def member_counts(session):
    """Return [(node id, node status, membership status, objects)]: one grouped scan of the
    memberships (grouped by status first: by node first, SQLite walks the node index and reads
    each row from the table, 4x slower)."""
    from ..store import Membership, Node

    per = (select(Membership.node_id, Membership.status, func.count().label("n"))
           .group_by(Membership.status, Membership.node_id).subquery())
    q = select(per.c.node_id, Node.status, per.c.status, per.c.n).join(Node, Node.id == per.c.node_id)
    return session.execute(q).all()


def _signature(session) -> tuple:
    """What changes whenever a membership or an object does: every decision writes an event and
    recounts its nodes; rounds and imports add nodes and objects. Reads the nodes, not members."""
    from ..store import Event, Node, Object

    nodes = session.execute(select(
        func.count(), func.max(Node.id), func.sum(Node.members_version), func.sum(Node.n_members),
        func.sum(case((Node.status == "approved", 1), else_=0)),
        func.sum(case((Node.status == "dissolved", 1), else_=0)))).one()
    # min and max apart: together, SQLite scans the table instead of reading two index ends
    objects = session.scalar(select(func.min(Object.id))), session.scalar(select(func.max(Object.id)))
    return (*nodes, *objects, session.scalar(select(func.max(Event.id))))


def counts(project, session):
    """Return (objects, member_counts) of the project, cached while its `_signature` holds, so
    a preview that follows each change of the options does not scan the members again."""
    from ..store import Object

    key = (str(project.root), project.db_url)
    sig = _signature(session)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1], hit[2]
    total = session.scalar(select(func.count()).select_from(Object)) or 0
    rows = member_counts(session)
    with _LOCK:
        _CACHE[key] = (sig, total, rows)
    return total, rows


def summarize(project, format: str, labels: str = "validated", with_images: bool = False,
              status: str = "any") -> ExportSummary:
    """Count what `export(project, format, labels=..., with_images=..., status=...)` would write
    (a loop over the groups of `member_counts`: nodes x membership statuses, not objects)."""
    from ..labels import node_labels

    check_options(format, labels, status)
    images = images_for(format, with_images)
    out = ExportSummary(format, labels, status, images,
                        SUFFIX[format] if format != "ecotaxa" or images else ".tsv")
    seen_only = status == "validated"
    with project.session() as s:
        named = node_labels(s)
        total, rows = counts(project, s)
    shown: set = set()
    kept_nodes: set = set()
    in_kept = 0
    for node_id, node_status, member, n in rows:
        # with status 'validated' a predicted member of an approved node is written as no member
        unseen = seen_only and node_status == "approved" and member != "validated"
        if node_status != "dissolved":
            kept_nodes.add(node_id)
            in_kept += 0 if unseen and format == "morphocluster-tree" else n
        if format == "morphocluster-tree":
            if node_status == "approved":
                out.n_unseen += n if unseen else 0
                out.n_labelled += 0 if unseen else n
                out.n_validated += n if member == "validated" else 0
            continue
        if node_status != "approved":
            continue
        nl = named.get(node_id)
        if nl is None:
            out.n_unnamed += n
            continue
        if unseen:
            out.n_unseen += n
            continue
        out.n_labelled += n
        out.n_validated += n if member == "validated" else 0
        shown.add(nl.display)
    out.n_predicted = out.n_labelled - out.n_validated
    if format == "morphocluster-tree":
        out.n_labels = len(kept_nodes)
        out.n_objects = total if labels == "all" else in_kept
    else:
        out.n_labels = len(shown)
        out.n_objects = total if labels == "all" else out.n_labelled
    out.n_unlabelled = out.n_objects - out.n_labelled
    _notes(project, out, total)
    return out


def _notes(project, out: ExportSummary, total: int) -> None:
    """What the counts alone do not say; `problem` where the export would fail or be empty."""
    if out.format == "hdf5":
        out.problem = _feature_problem(project, out, total)
    if out.n_unnamed and out.format != "morphocluster-tree":
        out.notes.append(f"{out.n_unnamed:,} objects lie in validated nodes without a name: they "
                         + ("are exported without a label" if out.labels == "all"
                            else "are not exported (only labelled objects are)")
                         + "; name those nodes to export their label")
    if out.n_unseen:
        out.notes.append(f"{out.n_unseen:,} predicted objects (accepted, not seen by a human) "
                         + ("are exported without a label" if out.labels == "all"
                            else "are not exported (only validated ones are)"))
    if out.format == "imagefolder":
        out.notes.append("one folder per label; unlabelled objects lie at the top; an object "
                         "whose image file is missing is left out")
    elif out.format == "ecotaxa" and out.with_images:
        out.notes.append("one image per object (more for objects imported from EcoTaxa with "
                         "several images: one table row each)")
    elif out.format == "ecotaxa":
        out.notes.append("the table alone: it names image files that are not in it")
    elif out.format == "morphocluster-tree":
        out.notes.append("every node that is not dissolved, with its members; candidate nodes' "
                         "members count as unlabelled")
    if out.problem is None and out.n_objects == 0:
        out.problem = ("the project holds no objects" if not total else
                       "no object has a label yet: validate (and name) a node, or export all objects")


def _feature_problem(project, out: ExportSummary, total: int) -> str | None:
    import h5py

    from ..features.h5 import FeatureError, active_name, feature_path, full_kept, not_kept_message

    try:
        name = active_name(project)
    except FeatureError:
        return "the project has no features yet: compute them on the Jobs page first"
    path = feature_path(project, name)
    if not path.is_file():
        return f"the active feature set {name!r} has no file"
    with h5py.File(path, "r") as h:
        if not h.attrs.get("complete", True):
            return f"the extraction of feature set {name!r} did not finish"
        if not full_kept(h):
            return not_kept_message(name, "the HDF5 export")
        n = len(h["object_id"])
    if n < total:
        out.notes.append(f"up to {total - n:,} objects have no features yet and are left out")
    out.notes.append(f"feature set {name!r}")
    return None
