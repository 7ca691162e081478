"""Clear the annotations of a project (for repeated simulations on one imported project)."""

from __future__ import annotations

from sqlalchemy import delete, update

from ..store import Event, Membership, Node, NodeCache, Rejection


def reset_annotations(project) -> None:
    """Delete every node, membership, rejection, cached statistic and event; keep the objects."""
    with project.transaction() as s:
        s.execute(update(Event).values(undone_by=None))
        for table in (Event, Rejection, NodeCache, Membership):
            s.execute(delete(table))
        s.execute(update(Node).values(parent_id=None))
        s.execute(delete(Node))
    from ..workflow import grow, outcomes

    grow.clear_cache()
    outcomes.clear_cache(project)
