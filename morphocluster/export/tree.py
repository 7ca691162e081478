"""The original MorphoCluster's saved tree (a ZIP): export, and import into a project.

Members: `nodes.csv` (node_id, parent_id, name, starred, filled, approved; older files have only
node_id, parent_id, name, filled, approved, and parent ids written as floats like `136771.0`),
`objects.csv` (node_id, object_id), `rejected_objects.csv` (node_id, object_id) and `meta.json`.
Extra columns are ignored by the original reader, so ours ride along for an exact round trip:
nodes.csv `status` (candidate|approved), objects.csv `status`, `annotator`, `annotated_at`.

The tree has one root that holds the objects of no cluster; exports write a synthetic root
(node_id 0). On import a root that is neither approved nor named is not made a node: its
objects stay unassigned and its children become top-level nodes.
"""

from __future__ import annotations

import csv
import json

from sqlalchemy import select

from .. import __version__
from ..labels import id_windows
from ..store import Membership, Node, Object, Rejection, User, utcnow
from .common import ExportReport, Sink, iso_utc
from .tree_import import import_tree  # noqa: F401  (the importer calls tree.import_tree)

ROOT_ID = 0
NODE_COLUMNS = ["node_id", "parent_id", "name", "starred", "filled", "approved", "status"]
OBJECT_COLUMNS = ["node_id", "object_id", "status", "annotator", "annotated_at"]


# --- export ---------------------------------------------------------------------------------
def export_tree(project, out, labels: str = "validated", with_images: bool = False,
                status: str = "any") -> ExportReport:
    """Write the project's tree as the original tool's tree ZIP.

    Every non-dissolved node and its members go in; labels='all' also lists the objects of no
    node on the root. status='validated': members of approved nodes that no human saw
    (predicted) are not written as members: they count as objects of no node.
    """
    report = ExportReport("morphocluster-tree", str(out))
    if with_images:
        report.warnings.append("a tree ZIP holds no images; --with-images ignored")
    with project.session() as s:
        nodes = s.execute(select(Node.id, Node.parent_id, Node.name, Node.status, Node.params,
                                 Node.approved_by, Node.approved_at).order_by(Node.id)).all()
        users = dict(s.execute(select(User.id, User.username)).all())
    kept = {n.id: n for n in nodes if n.status != "dissolved"}
    parent_of = {n.id: n.parent_id for n in nodes}

    def exported_parent(pid):
        while pid is not None and pid not in kept:
            pid = parent_of.get(pid)
        return ROOT_ID if pid is None else pid

    with Sink(out, force_zip=True) as sink:
        with sink.open_text("nodes.csv") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(NODE_COLUMNS)
            w.writerow([ROOT_ID, "", "", "False", "False", "False", "root"])
            for n in kept.values():
                filled = bool(((n.params or {}).get("tree") or {}).get("filled"))
                w.writerow([n.id, exported_parent(n.parent_id), n.name or "",
                            str(bool(n.name)), str(filled), str(n.status == "approved"), n.status])
        with sink.open_text("objects.csv") as f, project.session() as s:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(OBJECT_COLUMNS)
            q = select(Object.object_id, Membership.node_id, Membership.status, Membership.added_by,
                       Membership.added_at).select_from(Object)
            q = q.outerjoin(Membership, Membership.object_pk == Object.id) if labels == "all" \
                else q.join(Membership, Membership.object_pk == Object.id)
            for r in (row for lo, hi in id_windows(s) for row in s.execute(
                    q.where(Object.id >= lo, Object.id < hi).order_by(Object.id))):
                if r.node_id in kept and (status == "any" or r.status == "validated"
                                          or kept[r.node_id].status != "approved"):
                    n = kept[r.node_id]
                    # a member that was in the cluster when it was approved: its approver
                    # labelled it then (as the other exports say)
                    by, at = (r.added_by, r.added_at) if r.added_by is not None or n.status != "approved" \
                        else (n.approved_by, n.approved_at or r.added_at)
                    w.writerow([r.node_id, r.object_id, r.status, users.get(by, ""), iso_utc(at)])
                    report.count(kept[r.node_id].status == "approved")
                elif labels == "all":
                    w.writerow([ROOT_ID, r.object_id, "", "", ""])
                    report.count(False)
        with sink.open_text("rejected_objects.csv") as f, project.session() as s:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["node_id", "object_id"])
            q = (select(Rejection.node_id, Object.object_id).join(Object, Object.id == Rejection.object_pk)
                 .order_by(Rejection.id).execution_options(yield_per=5000))
            for r in s.execute(q):
                if r.node_id in kept:
                    w.writerow([r.node_id, r.object_id])
        with sink.open_text("meta.json") as f:
            json.dump({"format": "morphocluster-tree", "exported_by": f"morphocluster {__version__}",
                       "exported_at": iso_utc(utcnow()), "project": project.root.name,
                       "root_id": ROOT_ID, "labels": labels, "status": status}, f, indent=1)
    return report
