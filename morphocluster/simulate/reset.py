"""Clear the annotations of a project (for repeated simulations on one imported project)."""

from __future__ import annotations

from sqlalchemy import delete, text, update

from ..store import Event, Membership, Meta, Node, NodeCache, Rejection


def reset_annotations(project) -> None:
    """Delete every node, membership, rejection, cached statistic and event, and the settings
    of the sorting (page searches, far objects suggested); keep the objects."""
    from ..workflow.suggest import FAR_KEY

    with project.transaction() as s:
        s.execute(delete(Meta).where((Meta.key == FAR_KEY) | Meta.key.startswith("grow_search:")))
        s.execute(update(Event).values(undone_by=None))
        for table in (Event, Rejection, NodeCache, Membership):
            s.execute(delete(table))
        s.execute(update(Node).values(parent_id=None))
        s.execute(delete(Node))
        # nothing names the old nodes any more: number them from 1 again, so runs compare
        dialect = s.get_bind().dialect.name
        if dialect == "sqlite" and s.execute(text(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).first():
            s.execute(text("DELETE FROM sqlite_sequence WHERE name = 'nodes'"))
        elif dialect == "postgresql":
            s.execute(text("SELECT setval(pg_get_serial_sequence('nodes', 'id'), 1, false)"))
    from ..workflow import grow, outcomes

    grow.clear_cache()
    outcomes.clear_cache(project)
