"""Time and peak memory of one clustering round on synthetic clustered vectors.

Data: a Gaussian mixture in DIM dimensions (default 64) with n/1000 components of log-normal
sizes and spreads, plus 5 % uniform background noise; vectors are L2-normalised like the
real features. Two parts:

1. `--compare`: the HDBSCAN backends on the same vectors (SeedClusterer only, no store):
   `knn` (FAISS kNN graph -> fast_hdbscan on the sparse graph), `fast` (fast_hdbscan on the
   vectors, numba kd-tree Boruvka) and `hdbscan` (the hdbscan package, Boruvka kd-tree).
   Each runs in its own process with a time limit; ARI against the generating components
   checks that the faster ones cluster as well.
2. The full round (`cluster_round`) in a real project: objects in SQLite, features in HDF5,
   nodes and memberships written, node statistics and the 2-D map computed.

Each size runs in a fresh process so that its peak RSS (ru_maxrss) is its own.

    nice python benchmarks/cluster_scale.py --sizes 100000 --compare
    nice python benchmarks/cluster_scale.py --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(n: int, dim: int, seed: int = 0):
    """Return (X float32 L2-normalised, true component per row, -1 for background noise)."""
    rng = np.random.default_rng(seed)
    k = max(2, n // 1000)
    n_noise = n // 20
    w = rng.lognormal(0, 1, k)
    sizes = rng.multinomial(n - n_noise, w / w.sum())
    centers = rng.normal(0, 1, (k, dim)).astype(np.float32)
    spread = rng.uniform(0.08, 0.25, k).astype(np.float32)
    y = np.repeat(np.arange(k), sizes)
    X = centers[y] + rng.normal(0, 1, (len(y), dim)).astype(np.float32) * spread[y, None]
    lo, hi = centers.min(0), centers.max(0)
    noise = rng.uniform(lo, hi, (n_noise, dim)).astype(np.float32)
    X = np.concatenate([X, noise])
    y = np.concatenate([y, np.full(n_noise, -1)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    perm = rng.permutation(n)
    return X[perm].astype(np.float32), y[perm]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ari(y, labels) -> float:
    from sklearn.metrics import adjusted_rand_score

    m = labels >= 0
    return float(adjusted_rand_score(y[m], labels[m])) if m.any() else 0.0


def worker_backend(n, dim, backend, mcs):
    from morphocluster.cluster import SeedClusterer

    X, y = make_data(n, dim)
    base = peak_mb()
    t = time.perf_counter()
    est = SeedClusterer(min_cluster_size=mcs, min_samples=1, reduce="none", backend=backend).fit(X)
    return {"n": n, "backend": backend, "seconds": time.perf_counter() - t,
            "peak_mb": peak_mb(), "data_mb": base, "clusters": est.n_clusters_,
            "clustered": float((est.labels_ >= 0).mean()), "ari": _ari(y, est.labels_)}


def worker_round(n, dim, mcs, sample):
    from sqlalchemy import insert

    from morphocluster.cluster import cluster_round
    from morphocluster.features import set_active, write_features
    from morphocluster.features.h5 import feature_path
    from morphocluster.project import Project
    from morphocluster.store import Object

    X, y = make_data(n, dim)
    with tempfile.TemporaryDirectory(prefix="cluster-scale-") as tmp:
        project = Project.create(Path(tmp) / "p")
        t = time.perf_counter()
        ids = [f"syn/{i:07d}" for i in range(n)]
        with project.transaction() as s:
            for a in range(0, n, 100_000):
                s.execute(insert(Object), [{"object_id": i, "path": i + ".png"} for i in ids[a:a + 100_000]])
        write_features(feature_path(project, "syn"), ids, X)
        set_active(project, "syn")
        setup = time.perf_counter() - t
        del X
        t = time.perf_counter()
        r = cluster_round(project, min_cluster_size=mcs, min_samples=1, sample=sample)
        total = time.perf_counter() - t
        from morphocluster.features.matrix import load_matrix
        from morphocluster.store import Membership
        from sqlalchemy import select

        fm = load_matrix(project)
        with project.session() as s:
            mem = dict(s.execute(select(Membership.object_pk, Membership.node_id)).all())
        labels = np.array([mem.get(int(pk), -1) for pk in fm.pks])
        truth = y[[int(o.split("/")[1]) for o in fm.object_ids]]
        project.close()
    return {"n": n, "setup_s": setup, "round_s": total, "peak_mb": peak_mb(),
            "clusters": len(r.node_ids), "clustered": r.n_clustered / n, "ari": _ari(truth, labels),
            "timings": {k: round(v, 1) for k, v in r.timings.items()}}


def run_worker(args_list, limit):
    cmd = [sys.executable, __file__, "--worker", json.dumps(args_list)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"error": f"over the {limit} s limit"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--min-cluster-size", type=int, default=32)
    ap.add_argument("--sample", type=int, default=None)
    ap.add_argument("--compare", action="store_true", help="compare the HDBSCAN backends")
    ap.add_argument("--backends", default="knn,fast,hdbscan")
    ap.add_argument("--limit", type=int, default=1800, help="seconds allowed per run")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        kind, *rest = json.loads(a.worker)
        res = worker_backend(*rest) if kind == "backend" else worker_round(*rest)
        print(json.dumps(res))
        return
    sizes = [int(s) for s in a.sizes.split(",")]
    print(f"# cluster_scale: dim={a.dim} min_cluster_size={a.min_cluster_size} sample={a.sample}")
    print("# rerun: nice python benchmarks/cluster_scale.py " + " ".join(sys.argv[1:]))
    if a.compare:
        print(f"{'n':>9} {'backend':>8} {'seconds':>8} {'peak MB':>8} {'clusters':>8} "
              f"{'clustered':>9} {'ARI':>6}")
        for n in sizes:
            for b in a.backends.split(","):
                r = run_worker(["backend", n, a.dim, b, a.min_cluster_size], a.limit)
                if "error" in r:
                    print(f"{n:>9} {b:>8}  {r['error']}", flush=True)
                    continue
                print(f"{n:>9} {b:>8} {r['seconds']:>8.1f} {r['peak_mb']:>8.0f} {r['clusters']:>8} "
                      f"{r['clustered']:>9.3f} {r['ari']:>6.3f}", flush=True)
        return
    print(f"{'n':>9} {'round s':>8} {'peak MB':>8} {'clusters':>8} {'clustered':>9} {'ARI':>6}  phases")
    for n in sizes:
        r = run_worker(["round", n, a.dim, a.min_cluster_size, a.sample], a.limit)
        if "error" in r:
            print(f"{n:>9}  {r['error']}", flush=True)
            continue
        print(f"{n:>9} {r['round_s']:>8.1f} {r['peak_mb']:>8.0f} {r['clusters']:>8} "
              f"{r['clustered']:>9.3f} {r['ari']:>6.3f}  {r['timings']} (setup {r['setup_s']:.0f}s)",
              flush=True)


if __name__ == "__main__":
    main()
