"""Import the original MorphoCluster's saved tree (see `tree` for the format) into a project."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select

from ..store import Membership, Node, Object, Rejection, User, log_event, utcnow

MAX_LISTED = 100_000  # missing object ids kept in the import report


class _Source:
    """A tree ZIP or a folder holding nodes.csv and objects.csv."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.zip = None
        if self.path.is_file():
            try:
                self.zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise _failed(f"{self.path}: not a readable ZIP file ({exc})") from exc
            self.names = {Path(n).name: n for n in self.zip.namelist() if not n.endswith("/")}
        elif self.path.is_dir():
            self.names = {p.name: p for p in self.path.iterdir() if p.is_file()}
        else:
            raise _failed(f"{self.path}: no such file or folder")

    def rows(self, member: str, required: bool = True):
        """Return (line number, dict) rows of a CSV member, or None if absent and optional."""
        ref = self.names.get(member)
        if ref is None:
            if required:
                raise _failed(f"{self.path}: no {member} in the saved tree")
            return None
        raw = self.zip.open(ref) if self.zip is not None else open(ref, "rb")
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text)
        return reader, text

    def json(self, member: str) -> dict:
        ref = self.names.get(member)
        if ref is None:
            return {}
        data = self.zip.read(ref) if self.zip is not None else Path(ref).read_bytes()
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return {}

    def close(self):
        if self.zip is not None:
            self.zip.close()


def _failed(msg: str):
    from ..importers.report import ImportFailed

    return ImportFailed(msg)


def _int_id(text: str | None):
    """Parse a node id written as '12' or '12.0'; None for empty, ValueError if bad."""
    text = (text or "").strip()
    if not text or text.lower() == "nan":
        return None
    f = float(text)
    if not f.is_integer():
        raise ValueError(text)
    return int(f)


def _flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1", "yes", "t")


def _when(text: str | None):
    text = (text or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        return None


def import_tree(project, path, report=None) -> dict:
    """Add the nodes, memberships and rejections of a saved tree to `project` in one transaction.

    Objects are matched by object_id; those not in the project are left out and reported (how
    many, which ids); if none is there the import stops with a message and writes nothing.
    Objects already in a node keep it (reported). Bad rows are reported with file and line.
    """
    from ..importers.report import ImportReport

    report = report if report is not None else ImportReport()
    src = _Source(Path(path))
    try:
        return _import(project, src, report)
    finally:
        src.close()


def _read_nodes(src: _Source, report) -> dict[int, dict]:
    reader, fh = src.rows("nodes.csv")
    where = f"{src.path.name}:nodes.csv"
    with fh:
        missing = {"node_id", "parent_id"} - set(reader.fieldnames or [])
        if missing:
            raise _failed(f"{where}: missing column(s) {', '.join(sorted(missing))}")
        nodes: dict[int, dict] = {}
        for line, row in enumerate(reader, start=2):
            try:
                nid, pid = _int_id(row.get("node_id")), _int_id(row.get("parent_id"))
            except ValueError as exc:
                report.fail(f"{where}:{line}", f"node id {exc} is not an integer; node skipped")
                continue
            if nid is None:
                report.fail(f"{where}:{line}", "empty node_id; node skipped")
                continue
            if nid in nodes:
                report.fail(f"{where}:{line}", f"duplicate node_id {nid}; node skipped")
                continue
            status = (row.get("status") or "").strip()
            approved = status == "approved" if status in ("approved", "candidate") \
                else _flag(row.get("approved"))
            name = (row.get("name") or "").strip() or None
            nodes[nid] = {"parent": pid, "name": name, "approved": approved,
                          "filled": _flag(row.get("filled")), "starred": _flag(row.get("starred")),
                          "line": line}
    # drop nodes whose parent is unknown or that sit on a cycle (with their subtrees)
    ok: dict[int, bool] = {}
    for nid in nodes:
        chain, cur = [], nid
        while cur is not None and cur not in ok:
            if cur not in nodes or cur in chain:
                break
            chain.append(cur)
            cur = nodes[cur]["parent"]
        good = cur is None or ok.get(cur, False)
        if cur is not None and cur not in ok and (cur not in nodes or cur in chain):
            good = False
            bad = nodes[chain[-1]]
            reason = (f"parent {bad['parent']} is not in nodes.csv" if cur not in nodes
                      else f"node {cur} is its own ancestor (cycle)")
            report.fail(f"{where}:{bad['line']}", f"{reason}; node and its subtree skipped")
        for c in chain:
            ok[c] = good
    return {k: v for k, v in nodes.items() if ok[k]}


def _import(project, src: _Source, report) -> dict:
    name = src.path.name
    nodes = _read_nodes(src, report)
    # the root (no parent) holds unclustered objects; make it a node only if it says more
    container = {nid for nid, n in nodes.items()
                 if n["parent"] is None and not n["approved"] and not n["name"]}
    reader, fh = src.rows("objects.csv")
    where = f"{name}:objects.csv"
    assigned: list[tuple] = []  # (node id in file, object_id, status, annotator, when, line)
    seen: dict[str, int] = {}
    with fh:
        missing_cols = {"node_id", "object_id"} - set(reader.fieldnames or [])
        if missing_cols:
            raise _failed(f"{where}: missing column(s) {', '.join(sorted(missing_cols))}")
        for line, row in enumerate(reader, start=2):
            oid = (row.get("object_id") or "").strip()
            try:
                nid = _int_id(row.get("node_id"))
            except ValueError:
                nid = None
            if not oid or nid is None:
                report.fail(f"{where}:{line}", "empty or bad node_id/object_id; row skipped")
                continue
            if oid in seen:
                report.fail(f"{where}:{line}", f"object {oid!r} listed twice (first on line "
                                               f"{seen[oid]}); row skipped")
                continue
            seen[oid] = line
            if nid not in nodes:
                report.fail(f"{where}:{line}", f"node {nid} is not in nodes.csv (or was skipped); "
                                               "row skipped")
                continue
            assigned.append((nid, oid, (row.get("status") or "").strip(),
                             (row.get("annotator") or "").strip(), _when(row.get("annotated_at")), line))
    rejected: list[tuple] = []
    got = src.rows("rejected_objects.csv", required=False)
    if got is not None:
        reader, fh = got
        with fh:
            for line, row in enumerate(reader, start=2):
                try:
                    nid = _int_id(row.get("node_id"))
                except ValueError:
                    nid = None
                oid = (row.get("object_id") or "").strip()
                if nid in nodes and nid not in container and oid:
                    rejected.append((nid, oid))
                else:
                    report.fail(f"{name}:rejected_objects.csv:{line}", "unknown node or empty object id; "
                                                                      "row skipped")
    meta = src.json("meta.json")

    with project.transaction() as s:
        pk_of = _object_pks(s, [a[1] for a in assigned] + [r[1] for r in rejected])
        listed = sorted({a[1] for a in assigned} | {r[1] for r in rejected})
        absent = [oid for oid in listed if oid not in pk_of]
        if listed and len(absent) == len(listed):
            raise _failed(
                f"{src.path}: none of the {len(listed)} objects of the saved tree is in this project "
                f"(object ids e.g. {', '.join(absent[:10])}); import their images first "
                "(morphocluster import PROJECT IMAGES), then the tree. Nothing was imported.")
        if absent:
            listing = _write_missing(project, src.path, absent)
            report.note(f"{src.path}: {len(absent)} of {len(listed)} objects of the saved tree are not "
                        f"in this project and were left out: {', '.join(absent[:20])}"
                        + (f" ... (all {len(absent)} ids in {listing})" if len(absent) > 20 else ""))
        taken = _assigned_pks(s, list(pk_of.values()))
        placed = {pk_of[a[1]] for a in assigned if a[1] in pk_of and a[0] not in container}
        if placed and placed <= taken:
            raise _failed(f"{src.path}: every object that the saved tree puts in a node is in a node "
                          "of this project already (was this tree imported before?); importing it "
                          "would only add empty copies of its nodes. Nothing was imported.")
        new_id = _insert_nodes(s, nodes, container, src.path.name)
        users: dict[str, int] = {}
        members: list[dict] = []
        n_kept_out = 0
        count: dict[int, int] = {}
        now = utcnow()
        for nid, oid, status, annotator, when, line in assigned:
            pk = pk_of.get(oid)
            if pk is None or nid in container:
                continue
            if pk in taken:
                n_kept_out += 1
                continue
            node = nodes[nid]
            if status not in ("validated", "predicted", "cluster"):
                status = "validated" if node["approved"] else "cluster"
            members.append({"object_pk": pk, "node_id": new_id[nid], "status": status,
                            "added_by": _user_id(s, users, annotator) if annotator else None,
                            "added_at": when or now})
            count[new_id[nid]] = count.get(new_id[nid], 0) + 1
        for i in range(0, len(members), 10000):
            s.execute(insert(Membership), members[i:i + 10000])
        for node_pk, n in count.items():
            s.get(Node, node_pk).n_members = n
        rej = [{"node_id": new_id[nid], "object_pk": pk_of[oid]} for nid, oid in dict.fromkeys(rejected)
               if oid in pk_of]
        for i in range(0, len(rej), 10000):
            s.execute(insert(Rejection), rej[i:i + 10000])
        if n_kept_out:
            report.note(f"{src.path}: {n_kept_out} objects are already in a node of this project; "
                        "they stay there")
        summary = {"nodes": len(new_id), "memberships": len(members), "rejections": len(rej),
                   "missing_objects": len(absent), "already_assigned": n_kept_out,
                   "missing_object_ids": absent[:MAX_LISTED], "tree_meta": meta}
        log_event(s, None, "import_tree", {k: v for k, v in summary.items()
                                           if k not in ("missing_object_ids", "tree_meta")}
                  | {"source": str(src.path)})
    report.note(f"{src.path}: imported {len(new_id)} nodes, {len(members)} object assignments, "
                f"{len(rej)} rejections")
    report.extra.setdefault("trees", []).append({"source": str(src.path), **summary})
    return summary


def _write_missing(project, path: Path, ids: list[str]) -> Path:
    """Write the ids of a tree's objects missing from the project to a file in cache/."""
    project.cache_dir.mkdir(parents=True, exist_ok=True)
    out = project.cache_dir / f"tree-missing-{path.stem}-{utcnow():%Y%m%d-%H%M%S}.txt"
    out.write_text("\n".join(ids) + "\n", encoding="utf-8")
    return out


def _object_pks(s, object_ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    ids = list(dict.fromkeys(object_ids))
    for i in range(0, len(ids), 500):
        out.update(s.execute(select(Object.object_id, Object.id)
                             .where(Object.object_id.in_(ids[i:i + 500]))).all())
    return out


def _assigned_pks(s, pks: list[int]) -> set[int]:
    out: set[int] = set()
    for i in range(0, len(pks), 500):
        out.update(s.scalars(select(Membership.object_pk).where(Membership.object_pk.in_(pks[i:i + 500]))))
    return out


def _insert_nodes(s, nodes: dict, container: set, source: str) -> dict[int, int]:
    """Insert nodes parents first; return {node id in the file: new Node.id}."""
    new_id: dict[int, int] = {}
    children: dict = {}
    for nid, n in nodes.items():
        children.setdefault(n["parent"], []).append(nid)
    level = list(children.get(None, []))
    now = utcnow()
    while level:
        batch = []
        for nid in level:
            if nid in container:
                continue
            n = nodes[nid]
            parent = n["parent"]
            node = Node(parent_id=new_id.get(parent), name=n["name"],
                        status="approved" if n["approved"] else "candidate",
                        approved_at=now if n["approved"] else None, n_members=0, members_version=1,
                        params={"tree": {"source": source, "node_id": nid, "filled": n["filled"],
                                         "starred": n["starred"]}})
            batch.append((nid, node))
        s.add_all([b[1] for b in batch])
        s.flush()
        for nid, node in batch:
            new_id[nid] = node.id
        level = [c for nid in level for c in children.get(nid, [])]
    return new_id


def _user_id(s, cache: dict, username: str) -> int:
    """Return the id of the named user, adding one that cannot log in if there is none."""
    if username not in cache:
        uid = s.scalar(select(User.id).where(User.username == username))
        if uid is None:
            user = User(username=username[:64], password_hash="!", role="viewer")
            s.add(user)
            s.flush()
            uid = user.id
        cache[username] = uid
    return cache[username]

