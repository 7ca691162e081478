"""Index build time and restricted query latency at 100k and 1M synthetic vectors.

Goes through the project's own pipeline: objects in SQLite, a feature set in HDF5,
`morphocluster.index.build_index` (auto kind: exact up to 200k, IVF above) and
`morphocluster.index.search` one query at a time with k=1000, restricted to a random subset
of the objects (1 % and 10 %) and unrestricted. Recall@1000 is measured against exact search
on the same subset. Vectors: L2-normalised Gaussian mixture (200 centres).

Rerun:  nice python benchmarks/index_bench.py [--sizes 100000:1280,1000000:256] [--queries 50]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def synthetic(n, d, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, d)).astype(np.float32)
    X = np.empty((n, d), np.float32)
    for b in range(0, n, 100_000):
        m = min(100_000, n - b)
        X[b:b + m] = centres[rng.integers(200, size=m)] + 1.5 * rng.normal(size=(m, d)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def make_project(root: Path, n: int, d: int):
    from sqlalchemy import insert

    from morphocluster.features import feature_path, set_active, write_features
    from morphocluster.project import Project
    from morphocluster.store import Object

    if (root / "morphocluster.json").exists():
        return Project.open(root)
    p = Project.create(root)
    ids = [f"s{i}" for i in range(n)]
    with p.transaction() as s:
        for b in range(0, n, 50_000):
            s.execute(insert(Object), [{"object_id": i, "path": f"x/{i}.png"} for i in ids[b:b + 50_000]])
    write_features(feature_path(p, "synthetic"), ids, synthetic(n, d), {"extractor": "synthetic"})
    set_active(p, "synthetic")
    return p


def run(work: Path, n: int, d: int, queries: int, k: int):
    from morphocluster import index
    from morphocluster.features.matrix import load_matrix

    p = make_project(work / f"n{n}_d{d}", n, d)
    t = time.perf_counter()
    fm = load_matrix(p)
    t_load = time.perf_counter() - t
    meta = index.build_index(p)
    rng = np.random.default_rng(1)
    qrows = rng.choice(n, queries, replace=False)
    rows = []
    for label, frac in (("1 %", 0.01), ("10 %", 0.10), ("all", None)):
        allowed = None if frac is None else np.sort(rng.choice(fm.pks, int(n * frac), replace=False))
        lat, recall = [], []
        index.search(p, fm.X[qrows[0]], k, allowed_pks=allowed)  # warm (loads, gathers the subset)
        for qi in qrows:
            q = fm.X[qi]
            t = time.perf_counter()
            _, I = index.search(p, q, k, allowed_pks=allowed)
            lat.append(time.perf_counter() - t)
            if len(recall) < 5:
                import faiss

                rows_ = np.arange(n) if allowed is None else fm.rows_of(allowed)
                Xs = fm.X[rows_]
                kk = min(k, len(rows_))
                _, Ie = faiss.knn(q[None], Xs, kk)
                recall.append(len(set(I[0]) & set(fm.pks[rows_][Ie[0]])) / kk)
        assert allowed is None or np.isin(I, allowed).all()
        lat = np.array(lat) * 1000
        rows.append((label, np.median(lat), np.percentile(lat, 95), np.mean(recall)))
    return meta, t_load, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/work/cache/index_bench"))
    ap.add_argument("--sizes", default="100000:1280,1000000:256", help="n:d pairs")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("-k", type=int, default=1000)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    out = []
    for spec in args.sizes.split(","):
        n, d = map(int, spec.split(":"))
        meta, t_load, rows = run(args.work, n, d, args.queries, args.k)
        out.append((n, d, meta, t_load, rows))
        print(f"done n={n} d={d}: {meta['kind']} built in {meta['build_seconds']:.1f} s; {rows}", flush=True)
    print(f"\nk={args.k}, one query at a time, {args.queries} queries; latency in ms; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"{'n':>9s} {'d':>5s} {'index':>6s} {'build s':>8s} {'load s':>7s} {'subset':>7s} "
          f"{'median':>8s} {'p95':>8s} {'recall':>7s}")
    for n, d, meta, t_load, rows in out:
        kind = meta["kind"] + (f"{meta['nlist']}" if meta["kind"] == "ivf" else "")
        for label, med, p95, rec in rows:
            print(f"{n:9d} {d:5d} {kind:>6s} {meta['build_seconds']:8.1f} {t_load:7.1f} {label:>7s} "
                  f"{med:8.1f} {p95:8.1f} {rec:7.3f}")
    print(f"rerun: nice python benchmarks/index_bench.py --sizes {args.sizes} --queries {args.queries}")


if __name__ == "__main__":
    main()
