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
3. `--stats`: recomputing one node's statistics after a membership change (what the validate
   and grow screens wait for), for nodes of 100 to 100k members.

Each size runs in a fresh process so that its peak RSS (ru_maxrss) is its own.

    nice python benchmarks/cluster_scale.py --sizes 100000 --compare
    nice python benchmarks/cluster_scale.py --sizes 100000,1000000
    nice python benchmarks/cluster_scale.py --sizes 200000 --dim 1280 --stats
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


def cpu_s() -> float:
    """CPU seconds of this process: on a shared, overloaded machine wall time mostly measures
    the neighbours, CPU time measures the work."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} cpu {cpu_s():.0f}s rss {peak_mb():.0f}MB] {msg}",
          file=sys.stderr, flush=True)


def _ari(y, labels) -> float:
    from sklearn.metrics import adjusted_rand_score

    m = labels >= 0
    return float(adjusted_rand_score(y[m], labels[m])) if m.any() else 0.0


def worker_backend(n, dim, backend, mcs):
    from morphocluster.cluster import SeedClusterer

    X, y = make_data(n, dim)
    base = peak_mb()
    t, c = time.perf_counter(), cpu_s()
    est = SeedClusterer(min_cluster_size=mcs, min_samples=1, reduce="none", backend=backend).fit(X)
    return {"n": n, "backend": backend, "seconds": time.perf_counter() - t, "cpu": cpu_s() - c,
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
        log(f"set up {n} objects in {setup:.0f}s")
        t, c = time.perf_counter(), cpu_s()
        r = cluster_round(project, min_cluster_size=mcs, min_samples=1, sample=sample,
                          progress=lambda f, m: log(f"{f * 100:.0f}% {m}"))
        total, cpu = time.perf_counter() - t, cpu_s() - c
        log(f"round done: {r.timings}")
        from morphocluster.features.matrix import load_matrix
        from morphocluster.store import Membership
        from sqlalchemy import select

        fm = load_matrix(project)
        with project.session() as s:
            mem = dict(s.execute(select(Membership.object_pk, Membership.node_id)).all())
        labels = np.array([mem.get(int(pk), -1) for pk in fm.pks])
        truth = y[[int(o.split("/")[1]) for o in fm.object_ids]]
        project.close()
    return {"n": n, "setup_s": setup, "round_s": total, "cpu_s": cpu, "peak_mb": peak_mb(),
            "clusters": len(r.node_ids), "clustered": r.n_clustered / n, "ari": _ari(truth, labels),
            "timings": {k: round(v, 1) for k, v in r.timings.items()}}


def worker_stats(n, dim, sizes):
    """Time node_stats after one membership change, for nodes of the given sizes."""
    from sqlalchemy import insert

    from morphocluster.features import set_active, write_features
    from morphocluster.features.h5 import feature_path
    from morphocluster.features.matrix import load_matrix
    from morphocluster.nodestats import node_stats
    from morphocluster.project import Project
    from morphocluster.store import Membership, Node, Object

    X, _ = make_data(n, dim)
    out = []
    with tempfile.TemporaryDirectory(prefix="cluster-scale-") as tmp:
        project = Project.create(Path(tmp) / "p")
        ids = [f"syn/{i:07d}" for i in range(n)]
        with project.transaction() as s:
            s.execute(insert(Object), [{"object_id": i, "path": i + ".png"} for i in ids])
        write_features(feature_path(project, "syn"), ids, X)
        set_active(project, "syn")
        fm = load_matrix(project)
        start = 0
        for m in sizes:
            with project.transaction() as s:
                node = Node(status="approved", members_version=1)
                s.add(node)
                s.flush()
                s.execute(insert(Membership), [{"object_pk": int(pk), "node_id": node.id}
                                               for pk in fm.pks[start:start + m]])
                nid = node.id
            start += m
            node_stats(project, nid)
            with project.transaction() as s:  # one member leaves: the cache is stale
                s.execute(Membership.__table__.delete().where(Membership.object_pk == int(fm.pks[start - 1])))
                s.get(Node, nid).members_version += 1
            t, c = time.perf_counter(), cpu_s()
            node_stats(project, nid)
            wall, cpu = time.perf_counter() - t, cpu_s() - c
            t = time.perf_counter()
            node_stats(project, nid)
            out.append({"members": m, "recompute_s": wall, "recompute_cpu_s": cpu,
                        "cached_s": time.perf_counter() - t})
        project.close()
    return {"rows": out}


def run_worker(args_list, limit):
    """Run one measurement in a fresh process; its progress log goes to a file beside /tmp."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(args_list)]
    with tempfile.NamedTemporaryFile("w+", prefix="cluster-scale-", suffix=".log", delete=False) as err:
        print(f"# progress log: {err.name}", flush=True)
        try:
            out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            err.seek(0)
            done = [line for line in err.read().splitlines() if line.startswith("[")]
            return {"error": f"over the {limit} s limit; it got to:\n  " + "\n  ".join(done[-6:])}
        err.seek(0)
        text = err.read().strip()
    if out.returncode != 0:
        return {"error": text.splitlines()[-1] if text else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--dim", type=int, default=64)
    # 32, below the first-round default of 64: more clusters, the harder case for the store
    ap.add_argument("--min-cluster-size", type=int, default=32)
    ap.add_argument("--sample", type=int, default=None)
    ap.add_argument("--compare", action="store_true", help="compare the HDBSCAN backends")
    ap.add_argument("--backends", default="knn,fast,hdbscan")
    ap.add_argument("--stats", action="store_true",
                    help="time node statistics after a change, for nodes of 100 to 100k members")
    ap.add_argument("--limit", type=int, default=1800, help="seconds allowed per run")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        kind, *rest = json.loads(a.worker)
        fn = {"backend": worker_backend, "round": worker_round, "stats": worker_stats}[kind]
        res = fn(*rest)
        print(json.dumps(res))
        return
    sizes = [int(s) for s in a.sizes.split(",")]
    print(f"# cluster_scale: dim={a.dim} min_cluster_size={a.min_cluster_size} sample={a.sample}")
    print("# rerun: nice python benchmarks/cluster_scale.py " + " ".join(sys.argv[1:]))
    if a.stats:
        n = max(sizes)
        r = run_worker(["stats", n, a.dim, [m for m in (100, 1000, 10_000, 100_000) if m * 1.2 < n]],
                       a.limit)
        if "error" in r:
            print(r["error"])
            return
        print(f"{'members':>8} {'recompute s':>11} {'cpu s':>7} {'cached s':>9}   (dim {a.dim}, {n} objects)")
        for row in r["rows"]:
            print(f"{row['members']:>8} {row['recompute_s']:>11.3f} {row['recompute_cpu_s']:>7.3f} "
                  f"{row['cached_s']:>9.3f}")
        return
    if a.compare:
        print(f"{'n':>9} {'backend':>8} {'seconds':>8} {'cpu s':>8} {'peak MB':>8} {'clusters':>8} "
              f"{'clustered':>9} {'ARI':>6}")
        for n in sizes:
            for b in a.backends.split(","):
                r = run_worker(["backend", n, a.dim, b, a.min_cluster_size], a.limit)
                if "error" in r:
                    print(f"{n:>9} {b:>8}  {r['error']}", flush=True)
                    continue
                print(f"{n:>9} {b:>8} {r['seconds']:>8.1f} {r['cpu']:>8.1f} {r['peak_mb']:>8.0f} {r['clusters']:>8} "
                      f"{r['clustered']:>9.3f} {r['ari']:>6.3f}", flush=True)
        return
    print(f"{'n':>9} {'round s':>8} {'cpu s':>8} {'peak MB':>8} {'clusters':>8} {'clustered':>9} {'ARI':>6}  phases")
    for n in sizes:
        r = run_worker(["round", n, a.dim, a.min_cluster_size, a.sample], a.limit)
        if "error" in r:
            print(f"{n:>9}  {r['error']}", flush=True)
            continue
        print(f"{n:>9} {r['round_s']:>8.1f} {r['cpu_s']:>8.1f} {r['peak_mb']:>8.0f} {r['clusters']:>8} "
              f"{r['clustered']:>9.3f} {r['ari']:>6.3f}  {r['timings']} (setup {r['setup_s']:.0f}s)",
              flush=True)


if __name__ == "__main__":
    main()
