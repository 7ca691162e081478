"""Server time of the web UI's main pages on a project of 1M objects.

Run:  nice python benchmarks/web_bench.py [--n 1000000] [--dim 64] [--repeat 30] [--project DIR]

Builds (or re-uses, with --project) a project of N objects whose images repeat a few hundred real
PlanktonSet images, with synthetic clustered features (--dim, written as a normal feature set),
the project's own index (`build_index`), ~N/1000 candidate nodes covering 60 % of the objects and
20 approved nodes. Then times, through the Flask test client (server time, no network):
the validate page, a grow page and the home page (median and p95 over --repeat warm requests,
plus the first, cold request), and ranking all N objects as grow candidates for one node.
Target: each page < 100 ms p95. The map is a fragment loaded after the home page; it is
recomputed (colours from the current memberships) only after a decision, which its cold time shows.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO.parent / "shared" / "data" / "planktonset-dev"
PASSWORD = "bench-password"


def build(root: Path, n: int, dim: int, seed: int = 0) -> None:
    """Create the benchmark project at `root` (rows inserted in bulk)."""
    from sqlalchemy import insert

    from morphocluster.features import set_active, write_features
    from morphocluster.features.h5 import feature_path
    from morphocluster.index import build_index
    from morphocluster.project import Project
    from morphocluster.store import Membership, Node, Object
    from morphocluster.users import add_user

    t0 = time.perf_counter()
    p = Project.create(root)
    src = sorted(IMAGES.rglob("*.jpg"))[::40][:500]
    (p.images_dir / "bench").mkdir(parents=True)
    names = []
    for i, f in enumerate(src):
        shutil.copy2(f, p.images_dir / "bench" / f"{i}.jpg")
        names.append(f"bench/{i}.jpg")
    rng = np.random.default_rng(seed)
    n_blobs = max(10, n // 1000)
    centres = rng.normal(size=(n_blobs, dim)).astype(np.float32)
    blob = rng.integers(0, n_blobs, n)
    X = centres[blob] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = [f"obj{i:07d}" for i in range(n)]
    step = 50_000
    with p.engine.begin() as conn:
        for a in range(0, n, step):
            conn.execute(insert(Object), [
                {"id": i + 1, "object_id": ids[i], "path": names[i % len(names)], "width": 60, "height": 60}
                for i in range(a, min(n, a + step))])
    write_features(feature_path(p, "synthetic"), ids, X, {"extractor": "synthetic"})
    set_active(p, "synthetic")
    print(f"  objects and features: {time.perf_counter() - t0:.1f} s", flush=True)
    t1 = time.perf_counter()
    build_index(p)
    print(f"  index: {time.perf_counter() - t1:.1f} s", flush=True)
    # candidate nodes: 60 % of each blob; the first 20 blobs approved
    in_node = rng.random(n) < 0.6
    n_appr = min(20, n_blobs // 2)
    with p.engine.begin() as conn:
        counts = np.bincount(blob[in_node], minlength=n_blobs)
        conn.execute(insert(Node), [
            {"id": b + 1, "status": "approved" if b < n_appr else "candidate", "round": 1,
             "n_members": int(counts[b]), "members_version": 1, "name": f"class {b}" if b < n_appr else None}
            for b in range(n_blobs)])
        pks = np.flatnonzero(in_node)
        for a in range(0, len(pks), step):
            part = pks[a:a + step]
            conn.execute(insert(Membership), [
                {"object_pk": int(i) + 1, "node_id": int(blob[i]) + 1,
                 "status": "validated" if blob[i] < n_appr else "cluster"} for i in part])
    add_user(p, "bench", PASSWORD, "admin")
    p.close()
    print(f"  built in {time.perf_counter() - t0:.1f} s", flush=True)


def timed(client, url: str, repeat: int) -> dict:
    t = time.perf_counter()
    r = client.get(url)
    cold = time.perf_counter() - t
    assert r.status_code == 200, (url, r.status_code, r.get_data(as_text=True)[:500])
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200
    times.sort()
    return {"cold": cold, "median": statistics.median(times),
            "p95": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--project", type=Path, default=None, help="build here, or re-use if it exists")
    args = ap.parse_args(argv)

    from morphocluster.project import Project
    from morphocluster.web import create_app
    from morphocluster.workflow import grow

    tmp = None
    root = args.project
    if root is None:
        tmp = Path(tempfile.mkdtemp(prefix="web-bench-"))
        root = tmp / "proj"
    if not (root / "morphocluster.json").exists():
        print(f"Building a project of {args.n:,} objects at {root} ...", flush=True)
        build(root, args.n, args.dim)
    p = Project.open(root)
    try:
        app = create_app({"PROJECT": p})
        c = app.test_client()
        import re

        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
        c.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token})
        with p.session() as s:
            from sqlalchemy import func, select

            from morphocluster.store import Node, Object
            n = s.scalar(select(func.count(Object.id)))
            cand = s.scalar(select(Node.id).where(Node.status == "candidate").order_by(Node.n_members.desc()))
            appr = s.scalar(select(Node.id).where(Node.status == "approved").order_by(Node.id))
            appr2 = s.scalar(select(Node.id).where(Node.status == "approved", Node.id != appr).order_by(Node.id))
        rows = []
        t = time.perf_counter()
        page = grow.candidates(p, appr2, 0, 50)
        rank_s = time.perf_counter() - t
        for label, url in (("validate page", f"/validate/{cand}"),
                           ("validate: next page of members", f"/validate/{cand}/members?offset=60"),
                           ("grow page", f"/grow/{appr}"),
                           ("home page", "/"),
                           ("home map (htmx, after home)", "/map"),
                           ("thumbnail (cached)", "/thumb/1")):
            rows.append((label, timed(c, url, args.repeat)))
    finally:
        p.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nweb_bench: {n:,} objects, {args.dim}-d features, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}")
    print(f"{'request':<34}{'cold ms':>10}{'median ms':>12}{'p95 ms':>10}  target p95 < 100 ms")
    for label, r in rows:
        ok = "ok" if r["p95"] < 0.1 else "SLOW"
        print(f"{label:<34}{r['cold'] * 1e3:>10.1f}{r['median'] * 1e3:>12.1f}{r['p95'] * 1e3:>10.1f}  {ok}")
    print(f"{'rank all candidates for one node':<34}{rank_s * 1e3:>10.1f}{'':>12}{'':>10}  "
          f"({page.total:,} candidates, first page {len(page.pks)})")
    print(f"\nrerun: nice python benchmarks/web_bench.py --n {args.n} --dim {args.dim} --repeat {args.repeat}"
          + (f" --project {args.project}" if args.project else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
