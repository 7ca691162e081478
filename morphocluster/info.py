"""Summaries of what a project holds."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from .jobs import job_owner, owner_alive
from .project import Project
from .store import ImportRun, Job, Membership, Node, Object

SIZE_BINS = [(0, 32), (32, 64), (64, 128), (128, 256), (256, 512), (512, None)]


def summarize(project: Project) -> dict:
    """Return counts of objects, image sizes, imported labels and nodes."""
    with project.session() as s:
        n_objects = s.scalar(select(func.count()).select_from(Object))
        longest = func.max(Object.width, Object.height) if project.engine.dialect.name == "sqlite" \
            else func.greatest(Object.width, Object.height)
        sizes = {}
        for lo, hi in SIZE_BINS:
            q = select(func.count()).select_from(Object).where(longest >= lo)
            if hi is not None:
                q = q.where(longest < hi)
            sizes[f"{lo}-{hi - 1}" if hi else f"{lo}+"] = s.scalar(q)
        labels = dict(s.execute(
            select(Object.imported_label, func.count()).where(Object.imported_label.is_not(None))
            .group_by(Object.imported_label).order_by(func.count().desc())
        ).all())
        statuses = dict(s.execute(
            select(Object.imported_status, func.count()).where(Object.imported_status.is_not(None))
            .group_by(Object.imported_status)
        ).all())
        nodes = dict(s.execute(select(Node.status, func.count()).group_by(Node.status)).all())
        imports = [
            {"id": r.id, "format": r.format, "source": r.source, "added": r.n_added,
             "skipped": r.n_skipped, "failed": r.n_failed,
             "finished_at": r.finished_at.isoformat(timespec="seconds") if r.finished_at else None}
            for r in s.scalars(select(ImportRun).order_by(ImportRun.id.desc()).limit(5))
        ]
        n_imports = s.scalar(select(func.count()).select_from(ImportRun))
        labelled = s.scalar(
            select(func.count()).select_from(Membership).join(Node, Node.id == Membership.node_id)
            .where(Node.status == "approved")
        )
        jobs = [_job(j, job_owner(s, j.id))
                for j in s.scalars(select(Job).where(Job.state.in_(("queued", "running"))))]
    return {
        "project": str(project.root),
        "objects": n_objects,
        "image_sizes_px": sizes,
        "imported_labels": labels,
        "imported_statuses": statuses,
        "imports": n_imports,
        "last_imports": imports,
        "active_features": project.config.get("active_features"),
        "feature_storage": _storage(project),
        "nodes": nodes,
        "objects_in_approved_nodes": labelled,
        "index": _index_state(project, n_objects),
        "half_done_features": _half_done(project),
        "active_jobs": jobs,
    }


def _job(job, owner: dict | None) -> dict:
    """A queued or running job; "interrupted" where its process is gone (alive False), "alive"
    None where that cannot be told (a process on another machine)."""
    alive = owner_alive(owner, unknown=None) if owner else False  # none recorded: as a server starting
    return {"id": job.id, "kind": job.kind, "state": job.state if alive is not False else "interrupted",
            "message": job.message, "alive": alive,
            "since": job.created_at.isoformat(timespec="seconds") if job.created_at else None,
            "pid": (owner or {}).get("pid"), "host": (owner or {}).get("host")}


def _index_state(project, n_objects: int) -> dict | None:
    """The active feature set's rows and its index: whether either is behind the objects."""
    import h5py

    name = project.config.get("active_features")
    if not name:
        return None
    try:
        with h5py.File(project.features_dir / f"{name}.h5", "r") as h:
            rows = len(h["object_id"])
    except (OSError, KeyError):
        rows = None
    path = project.index_dir / f"{name}.json"
    meta = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {"kind": meta.get("kind"), "n": meta.get("n"), "pca": meta.get("pca"),
            "without_features": max(0, n_objects - rows) if rows is not None else None,
            "behind": bool(meta) and rows is not None and meta.get("n") != rows}


def _storage(project) -> str | None:
    """How the active set keeps its full features: float32, float16 or none (not kept)."""
    import h5py

    from .features.h5 import storage

    name = project.config.get("active_features")
    try:
        with h5py.File(project.features_dir / f"{name}.h5", "r") as h:
            return storage(h)
    except (OSError, TypeError):
        return None


def _half_done(project) -> list[dict]:
    """Feature sets an interrupted `features` run left part way (it resumes them); those keeping
    no full features say which step (the fit sample, or the rest into the working matrix)."""
    import h5py
    import numpy as np

    there = project.features_dir.is_dir()
    out = []
    for b in sorted(project.features_dir.glob("*.working.build")) if there else []:
        try:
            done = json.loads((b / "build.json").read_text(encoding="utf-8"))["done"]
            total = len(np.load(b / "todo.npy", mmap_mode="r"))
        except (OSError, ValueError, KeyError):
            continue  # a plain working build, or one complete and waiting to be put in place
        out.append({"name": b.name.removesuffix(".working.build"), "done": int(done),
                    "total": total, "step": "the rest, into the working matrix"})
    partial = [*project.features_dir.glob("*.h5.partial"),
               *project.features_dir.glob("*.h5.sample.partial")] if there else []
    for p in sorted(partial):
        row = {"name": p.name.removesuffix(".partial").removesuffix(".h5"), "done": None, "total": None}
        if row["name"].endswith(".h5.sample"):
            row.update(name=row["name"].removesuffix(".h5.sample"), step="the fit sample")
        try:
            with h5py.File(p, "r") as h:
                row.update(done=int(h.attrs.get("done", 0)), total=len(h["object_id"]))
        except (OSError, KeyError) as exc:
            row["error"] = "in use by another process" if "lock" in str(exc).lower() else "unreadable"
        out.append(row)
    return out


def format_summary(summary: dict) -> str:
    """Render a summary as aligned text."""
    lines = [f"Project: {summary['project']}", f"Objects: {summary['objects']}"]
    lines.append("Image sizes (longest side, px):")
    lines += [f"  {k:>9}: {v}" for k, v in summary["image_sizes_px"].items() if v]
    labels = summary["imported_labels"]
    lines.append(f"Imported labels: {len(labels)} categories")
    lines += [f"  {v:>7}  {k}" for k, v in list(labels.items())[:30]]
    if len(labels) > 30:
        lines.append(f"  ... and {len(labels) - 30} more")
    if summary["imported_statuses"]:
        lines.append("Imported statuses: " + ", ".join(f"{k} {v}" for k, v in summary["imported_statuses"].items()))
    if summary.get("imports"):
        lines.append(f"Imports: {summary['imports']} (latest first)")
        for r in summary["last_imports"]:
            src = r["source"].replace("\n", ", ")
            lines.append(f"  #{r['id']} {r['finished_at']} {r['format']}: added {r['added']}, "
                         f"skipped {r['skipped']}, failed {r['failed']}  {src}")
    store = summary.get("feature_storage")
    kept = {None: "", "none": " (full features not kept: --store none)"}.get(
        store, f" (full features: {store})")
    lines.append(f"Active features: {summary.get('active_features') or 'none'}{kept}")
    nodes = summary["nodes"]
    lines.append("Nodes: " + (", ".join(f"{k} {v}" for k, v in nodes.items()) if nodes else "none"))
    lines.append(f"Objects in approved nodes: {summary['objects_in_approved_nodes']}")
    ix = summary.get("index")
    if ix and ix.get("without_features"):
        lines.append(f"Objects without features: {ix['without_features']} (imported since): run "
                     "`morphocluster features` (only they are computed), then `morphocluster index`")
    if ix and ix.get("kind"):
        lines.append(f"Index: {ix['kind']} over {ix['n']} objects" + (f", PCA {ix['pca']}" if ix["pca"] else "")
                     + ("; behind the features: run `morphocluster index` again" if ix["behind"] else ""))
    elif summary.get("active_features"):
        lines.append("Index: none yet (searches run exactly): run `morphocluster index`")
    for f in summary.get("half_done_features", []):
        if f.get("error") == "in use by another process":
            lines.append(f"Feature set being computed: {f['name']} (in use by another process: wait for that run)")
            continue
        state = f.get("error") or f"{f['done']} of {f['total']} objects done"
        if f.get("step"):
            state = f"full features not kept; {f['step']}: {state}"
        lines.append(f"Half-done feature set: {f['name']} ({state}); `morphocluster features` resumes it")
    for j in summary.get("active_jobs", []):
        lines.append(_job_line(j))
    return "\n".join(lines)


def _job_line(j: dict) -> str:
    head = f"Job {j['id']} ({j['kind']}): "
    said = f", last said: {j['message']}" if j.get("message") else ""
    if j.get("state") == "interrupted":
        who = f"process {j['pid']}" if j.get("pid") else "the process that ran it"
        return (head + f"interrupted (started {j['since']}{said}): {who} is gone, so it will not "
                "finish and changed nothing; start it again (the next job, or a server starting, "
                "marks it failed)")
    where = "" if j.get("alive") else f" (on {j.get('host')}: cannot tell from here whether it still runs)"
    return head + f"{j['state']} since {j['since']}" + (f", {j['message']}" if j.get("message") else "") + where
