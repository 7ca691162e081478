"""Two annotators deciding at the same moment: one decision wins, the other is refused whole.

Real SQLite file (WAL) and real threads; the PostgreSQL side is in test_postgres.py."""

import threading
import time

import pytest
from sqlalchemy import func, select

from morphocluster.store import ConcurrentChange, Membership, Node
from morphocluster.workflow import WorkflowError, grow, validate
from test_workflow_setup import CLASSES, check_counts, wf  # noqa: F401


def _at_once(*calls):
    """Run the calls in threads released together; return each one's result or exception."""
    barrier, out = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            out[i] = call()
        except (WorkflowError, ConcurrentChange) as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_a_write_transaction_reads_only_after_the_one_before_it_committed(wf):
    """The checks of a decision must see what a decision made a moment before it wrote."""
    p = wf.project
    nid = wf.make_node(wf.by_class[CLASSES[0]][:5])
    inside, seen = threading.Event(), []

    def first():
        with p.transaction() as s:
            s.get(Node, nid)  # its checks...
            inside.set()
            time.sleep(0.4)
            s.get(Node, nid).name = "first"  # ...then its write

    def second():
        inside.wait()
        with p.transaction() as s:
            seen.append(s.get(Node, nid).name)

    t1, t2 = threading.Thread(target=first), threading.Thread(target=second)
    t1.start(), t2.start()
    t1.join(), t2.join()
    assert seen == ["first"]


def test_two_approves_of_one_node_at_once_one_is_refused(wf):
    p = wf.project
    for i in range(3):
        nid = wf.make_node(wf.by_class[CLASSES[0]][8 * i:8 * i + 8])
        a, b = _at_once(lambda: validate.approve(p, wf.A, nid, name="by-ann"),
                        lambda: validate.approve(p, wf.B, nid, name="by-bob"))
        assert [isinstance(r, Exception) for r in (a, b)].count(True) == 1, (a, b)
        refused = a if isinstance(a, Exception) else b
        assert "not candidate" in str(refused) or "claimed" in str(refused)
        with p.session() as s:
            assert s.get(Node, nid).name == ("by-ann" if b is refused else "by-bob")


def test_overlapping_grow_accepts_at_once_file_each_object_once(wf):
    p = wf.project
    cls = wf.by_class[CLASSES[1]]
    x = wf.make_node(cls[:5], status="approved", name="x", member_status="validated")
    y = wf.make_node(cls[5:10], status="approved", name="y", member_status="validated")
    both = cls[10:30]
    r = _at_once(lambda: grow.accept(p, wf.A, x, both, shown_pks=both),
                 lambda: grow.accept(p, wf.B, y, both, shown_pks=both))
    assert [isinstance(v, Exception) for v in r].count(True) == 1, r
    assert "already belong" in str(next(v for v in r if isinstance(v, Exception)))
    with p.session() as s:
        n = s.scalar(select(func.count()).select_from(Membership).where(Membership.object_pk.in_(both)))
    assert n == len(both)
    check_counts(p)
