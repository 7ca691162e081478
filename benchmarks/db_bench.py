"""Database pages at scale: N objects with nodes, memberships, rejections and events, no features.

Builds (or re-uses) a project of N objects in bulk, in chunks (memory bounded at any N), then
times each page whose work is the database (home counts and work queue, tree, object page,
find by id start / id part, event log first and a deep keyset page, jobs) through the Flask test
client: cold (first request in a fresh process) and warm p95; and EXPLAINs every statement they
run (store.plans), counting those that read a large table whole.

    .venv/bin/python benchmarks/db_bench.py --n 1000000 [--db postgresql://...] [--project DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PASSWORD = "bench-pw-123"
CHUNK = 50_000


def build(root: Path, n: int, db_url: str | None, seed: int = 0) -> None:
    """Create the project at `root`: rows inserted CHUNK at a time."""
    from sqlalchemy import bindparam, insert, text, update

    from morphocluster.project import Project
    from morphocluster.store import Event, Membership, Node, Object, Rejection
    from morphocluster.users import add_user

    t0 = time.perf_counter()
    p = Project.create(root, database_url=db_url)
    rng = np.random.default_rng(seed)
    n_nodes = max(10, n // 1000)
    n_appr = n_nodes // 5
    counts = np.zeros(n_nodes, np.int64)
    with p.engine.begin() as conn:
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK)
            conn.execute(insert(Object), [{"id": i + 1, "object_id": f"s{i % 97:02d}/obj{i:08d}",
                                           "path": "bench/0.jpg", "width": 60, "height": 60}
                                          for i in range(a, b)])
        print(f"  objects: {time.perf_counter() - t0:.0f} s", flush=True)
        conn.execute(insert(Node), [
            {"id": k + 1, "status": "approved" if k < n_appr else "candidate", "round": 1,
             "n_members": 0, "members_version": 1,
             "name": f"class {k}" if k < n_appr else None} for k in range(n_nodes)])
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK)
            pick = np.flatnonzero(rng.random(b - a) < 0.6) + a
            nodes = rng.integers(0, n_nodes, len(pick))
            np.add.at(counts, nodes, 1)
            conn.execute(insert(Membership), [
                {"object_pk": int(i) + 1, "node_id": int(k) + 1,
                 "status": "validated" if k < n_appr else "cluster"} for i, k in zip(pick, nodes)])
        conn.execute(update(Node).where(Node.id == bindparam("nid")).values(n_members=bindparam("n")),
                     [{"nid": k + 1, "n": int(counts[k])} for k in range(n_nodes)])
        print(f"  memberships: {time.perf_counter() - t0:.0f} s", flush=True)
        n_rej = n // 50
        for a in range(0, n_rej, CHUNK):
            b = min(n_rej, a + CHUNK)
            conn.execute(insert(Rejection), [{"node_id": int(i % n_appr) + 1, "object_pk": int(i) + 1}
                                             for i in range(a, b)])
        # one event per 20 objects: grow decisions of the approved nodes (with their undo data),
        # approvals, removals; every 50th undone
        n_ev = n // 20
        actions = np.array(["grow_accept", "grow_until", "approve", "remove"])
        for a in range(0, n_ev, CHUNK):
            b = min(n_ev, a + CHUNK)
            conn.execute(insert(Event), [
                {"id": i + 1, "user_id": None, "action": str(actions[i % 4]),
                 "payload": {"node": int(i % (n_appr if i % 4 < 2 else n_nodes)) + 1, "objects": 20,
                             "reverse": {"moves": [[int(i), None, None, 1, "validated"]] * 20}}}
                for i in range(a, b)])
            conn.execute(text("UPDATE events SET undone_by = id + 1 WHERE id > :a AND id < :b "
                              "AND id % 50 = 0"), {"a": a, "b": b})
        print(f"  rejections and events: {time.perf_counter() - t0:.0f} s", flush=True)
    add_user(p, "bench", PASSWORD, "admin")
    p.close()
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)


def pages(n: int) -> list[tuple[str, str]]:
    n_ev = n // 20
    mid = n // 2
    return [("home", "/"), ("work queue: grow next", "/grow/"), ("tree", "/tree/"),
            ("object", f"/object/{mid}"),
            ("find exact id", f"/object/find?q=s{(mid - 1) % 97:02d}/obj{mid - 1:08d}"),
            ("find id start", f"/object/find?q=S{(mid - 1) % 97:02d}/OBJ000"),
            ("find id part", "/object/find?q=no-such-part"),
            ("events", "/events"), ("events, deep page", f"/events?before={max(2, n_ev // 10)}"),
            ("events, legacy ?page=3", "/events?page=3"), ("jobs", "/jobs/")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--db", default=None, help="a PostgreSQL URL (default: SQLite in the project)")
    ap.add_argument("--project", type=Path, default=None, help="build here, or re-use if it exists")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_web_fixtures import login

    from morphocluster.project import Project
    from morphocluster.store.plans import capture, full_scans
    from morphocluster.web import create_app

    tmp = None
    root = args.project
    if root is None:
        tmp = Path(tempfile.mkdtemp(prefix="db_bench_"))
        root = tmp / "proj"
    if not (root / "morphocluster.json").exists():
        print(f"building {args.n:,} objects at {root}", flush=True)
        build(root, args.n, args.db)
    try:
        p = Project.open(root)
        c = create_app({"PROJECT": p, "TESTING": True}).test_client()
        login(c, "bench", PASSWORD)
        rows = []
        for name, url in pages(args.n):
            t = time.perf_counter()
            try:
                with capture(p.engine) as seen:
                    r = c.get(url)
            except Exception as exc:  # noqa: BLE001 - a page that needs features: say so
                rows.append((name, url, exc.__class__.__name__, None, None, None, ""))
                continue
            cold = time.perf_counter() - t
            if r.status_code not in (200, 302):
                rows.append((name, url, r.status_code, None, None, None, ""))
                continue
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                c.get(url)
                times.append(time.perf_counter() - t)
            times.sort()
            p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
            bad = full_scans(p.engine, seen)
            rows.append((name, url, r.status_code, cold, statistics.median(times), p95,
                         "; ".join(s for b in bad for s in b["scans"])))
        print(f"\n{args.n:,} objects, {p.engine.dialect.name}; warm: {args.repeat} requests")
        print("| page | url | cold ms | warm median ms | warm p95 ms | full scans |")
        print("|---|---|---:|---:|---:|---|")
        for name, url, code, cold, med, p95, scans in rows:
            if cold is None:
                print(f"| {name} | {url} | HTTP {code} | | | |")
            else:
                print(f"| {name} | {url} | {cold * 1e3:.1f} | {med * 1e3:.1f} | {p95 * 1e3:.1f} | "
                      f"{scans or 'none'} |")
        print(f"\nrerun: .venv/bin/python benchmarks/db_bench.py --n {args.n}"
              + (f" --db {args.db}" if args.db else "") + (f" --project {root}" if tmp is None else ""))
        p.close()
    finally:
        if tmp is not None and args.project is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
