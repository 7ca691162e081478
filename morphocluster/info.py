"""Summaries of what a project holds."""

from __future__ import annotations

from sqlalchemy import func, select

from .project import Project
from .store import ImportRun, Membership, Node, Object

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
    return {
        "project": str(project.root),
        "objects": n_objects,
        "image_sizes_px": sizes,
        "imported_labels": labels,
        "imported_statuses": statuses,
        "imports": n_imports,
        "last_imports": imports,
        "active_features": project.config.get("active_features"),
        "nodes": nodes,
        "objects_in_approved_nodes": labelled,
    }


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
    lines.append(f"Active features: {summary.get('active_features') or 'none'}")
    nodes = summary["nodes"]
    lines.append("Nodes: " + (", ".join(f"{k} {v}" for k, v in nodes.items()) if nodes else "none"))
    lines.append(f"Objects in approved nodes: {summary['objects_in_approved_nodes']}")
    return "\n".join(lines)
