"""Seed-cluster quality on planktonset-dev: clustering rounds interleaved with simulated approvals.

Imports planktonset-dev (class folders = truth, never shown to the clustering), computes the
default features through the project's own pipeline (or takes `--features FILE`, matched by
object id), then for each configuration runs ROUNDS rounds of `cluster_round` on a fresh node
tree. After each round every new cluster of purity >= 0.9 is "approved" (its objects leave the
pool); the rest are left as candidates, which the next round gives back to the pool. Round 1
uses the configuration's min_cluster_size, later rounds the automatic one (half the previous,
floor 8).

Per round: clusters, share of the pool clustered, purity (share of the majority true class,
over clustered objects), adjusted Rand index of clustered objects against their classes, share
of clusters that were approved, classes with an approved cluster so far, time. Per
configuration: objects approved after all rounds
(share of all objects) and approved objects per proposed cluster (every proposed cluster costs
the annotator at least one look, so this is the seed stage's objects per click).

Rerun:  nice python benchmarks/cluster_quality.py [--features /work/cache/planktonset_effnet128.h5]
        [--configs pca64-leaf-32,umap10-leaf-32] [--rounds 4]

Why the defaults (measured with EfficientNet-Lite0 features, see the table this prints):
{REASONING}
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "planktonset-dev"

REASONING = """\
Measured 2026-11-26 with --features (EfficientNet-Lite0 128 px), 4 rounds, approve purity >= 0.9,
wall seconds on the shared 2-core machine under load ~13 (CPU-bound neighbours):

  config (round-1 mcs)   approved  clusters  obj/cluster  classes  seconds
  pca64-leaf-64 default     0.263       332         17.0       33      113
  pca64-leaf-32             0.264       554         10.2       37       82
  pca64-leaf-128            0.228       125         39.1       18      128
  pca64-leaf-64 floor 16    0.237       171         29.8       19      106
  pca64-leaf-32 ms=32       0.157        61         55.3        -      140
  pca64-eom-32              0.179        36        106.9        8       79
  pca32-leaf-32             0.262       555         10.1        -       93
  none-leaf-32 (1280-d)     0.226       412         11.8        -      237
  umap10-leaf-32, 3 rounds  0.311      1065          6.3        -      787

(On the same machine when quiet, the default's 4 rounds take 7 s in all, 1.3-2.7 s a round;
the results are deterministic.)

- reduce pca:64: PCA 32 is as good, 1280-d ('none') is worse and 2-3x slower. UMAP to 10-d
  clusters 55-60 % of the pool, but into many small, less pure clusters (purity 0.65-0.72):
  it reaches 31 % approved only by proposing 3x more clusters per approved object, and its fit
  (tens of seconds here after a one-off compile, about an hour at 1M on 2 cores) is far slower.
- method leaf: excess of mass finds big seeds in round 1, then merges the rest of the pool into
  one or two giant impure clusters (85-93 % of the pool, purity 0.12) and stalls at 18 %.
- min_samples 1: min_samples = min_cluster_size gives fewer, larger clusters and stalls at 16 %.
- min_cluster_size 64 in round 1: the same coverage after 4 rounds as 32 with 40 % fewer
  clusters to review (17 vs 10 approved objects per proposed cluster); 128 loses coverage and
  classes. Halving down to 8 (not 16): the last round finds seeds of 14 more classes (33 vs
  19), small classes that growing can then fill."""

__doc__ = __doc__.replace("{REASONING}", REASONING)

CONFIGS = {
    # name: (reduce, method, first min_cluster_size, min_samples[, floor of the halving])
    "pca64-leaf-32": ("pca:64", "leaf", 32, 1),
    "pca64-leaf-64": ("pca:64", "leaf", 64, 1),
    "pca64-leaf-16": ("pca:64", "leaf", 16, 1),
    "pca64-leaf-32-ms32": ("pca:64", "leaf", 32, 32),
    "pca64-eom-32": ("pca:64", "eom", 32, 1),
    "pca32-leaf-32": ("pca:32", "leaf", 32, 1),
    "none-leaf-32": ("none", "leaf", 32, 1),
    "umap10-leaf-32": ("umap:10", "leaf", 32, 1),
    "pca64-leaf-32-floor16": ("pca:64", "leaf", 32, 1, 16),
    "pca64-leaf-64-floor16": ("pca:64", "leaf", 64, 1, 16),
    "pca64-leaf-128": ("pca:64", "leaf", 128, 1),
    "pca64-leaf-64-ms4": ("pca:64", "leaf", 64, 4),
}


def build_project(work: Path, data: Path, features: str | None):
    from morphocluster.features.extract import extract_features
    from morphocluster.features.registry import DEFAULT
    from morphocluster.importers import import_sources
    from morphocluster.project import Project

    root = work / "project"
    if (root / "morphocluster.json").exists():
        return Project.open(root)
    p = Project.create(root)
    t = time.perf_counter()
    import_sources(p, [data], labels_from_folders=True, progress=False)
    print(f"# imported in {time.perf_counter() - t:.0f}s", flush=True)
    t = time.perf_counter()
    extract_features(p, f"external:{features}" if features else DEFAULT, progress=False)
    print(f"# features in {time.perf_counter() - t:.0f}s", flush=True)
    return p


def reset_tree(project) -> None:
    from morphocluster.store import Event, Membership, Node, NodeCache

    with project.transaction() as s:
        for t in (Membership, NodeCache, Event, Node):
            s.execute(t.__table__.delete())


def truth(project) -> dict:
    from sqlalchemy import select

    from morphocluster.store import Object

    with project.session() as s:
        return dict(s.execute(select(Object.id, Object.imported_label)).all())


def evaluate_round(project, r, label_of: dict, min_purity: float, found: set):
    """Score the round's clusters and approve the pure ones (their classes go into `found`)."""
    from sklearn.metrics import adjusted_rand_score
    from sqlalchemy import select, update

    from morphocluster.store import Membership, Node

    with project.session() as s:
        rows = s.execute(select(Membership.object_pk, Membership.node_id)
                         .where(Membership.node_id.in_(r.node_ids))).all()
    by_node: dict = {}
    for pk, nid in rows:
        by_node.setdefault(nid, []).append(label_of[pk])
    majority, approve, n_approved = 0, [], 0
    for nid, labels in by_node.items():
        classes, counts = np.unique(labels, return_counts=True)
        majority += counts.max()
        if counts.max() / len(labels) >= min_purity:
            approve.append(nid)
            n_approved += len(labels)
            found.add(classes[counts.argmax()])
    y = [label_of[pk] for pk, _ in rows]
    ari = adjusted_rand_score(y, [nid for _, nid in rows]) if rows else 0.0
    with project.transaction() as s:
        if approve:
            s.execute(update(Node).where(Node.id.in_(approve)).values(status="approved"))
            s.execute(update(Membership).where(Membership.node_id.in_(approve))
                      .values(status="validated"))
    return {"clusters": len(r.node_ids), "clustered": r.n_clustered / max(r.n_pool, 1),
            "purity": majority / max(len(rows), 1), "ari": ari,
            "approved_clusters": len(approve), "approved_objects": n_approved}


def run_config(project, name, rounds, label_of, min_purity):
    from morphocluster.cluster import cluster_round

    reduce, method, mcs, ms, *floor = CONFIGS[name]
    reset_tree(project)
    n_all = len(label_of)
    tot_approved = tot_clusters = 0
    found: set = set()
    t_all = 0.0
    for i in range(1, rounds + 1):
        t = time.perf_counter()
        if i > 1:  # None: the library's automatic schedule
            mcs = max(floor[0], mcs // 2) if floor else None
        r = cluster_round(project, min_cluster_size=mcs, min_samples=ms,
                          method=method, reduce=reduce, stats=False, map2d=False)
        dt = time.perf_counter() - t
        t_all += dt
        mcs = r.params["min_cluster_size"]
        row = evaluate_round(project, r, label_of, min_purity, found)
        tot_approved += row["approved_objects"]
        tot_clusters += row["clusters"]
        print(f"{name:>22} {i:>3} {r.params['min_cluster_size']:>4} {r.n_pool:>6} {row['clusters']:>5} "
              f"{row['clustered']:>6.3f} {row['purity']:>6.3f} {row['ari']:>6.3f} "
              f"{row['approved_clusters']:>5} {tot_approved / n_all:>7.3f} {len(found):>5} {dt:>6.1f}",
              flush=True)
    return {"name": name, "approved": tot_approved / n_all, "clusters": tot_clusters,
            "classes": len(found),
            "per_cluster": tot_approved / max(tot_clusters, 1), "seconds": t_all}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--features", help="precomputed feature file (HDF5 with object_id/features)")
    ap.add_argument("--work", type=Path, default=None, help="keep the project here (reused)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--min-purity", type=float, default=0.9)
    a = ap.parse_args()
    import tempfile

    work = a.work or Path(tempfile.mkdtemp(prefix="cluster-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    print("# cluster_quality on", a.data, "features:", a.features or "default extractor")
    print("# rerun: nice python benchmarks/cluster_quality.py " + " ".join(sys.argv[1:]))
    project = build_project(work, a.data, a.features)
    label_of = truth(project)
    print(f"# {len(label_of)} objects, {len(set(label_of.values()))} classes; approve purity >= {a.min_purity}")
    print(f"{'config':>22} {'rnd':>3} {'mcs':>4} {'pool':>6} {'clus':>5} {'frac':>6} {'purity':>6} "
          f"{'ARI':>6} {'appr':>5} {'cum.ap':>7} {'class':>5} {'sec':>6}")
    summary = [run_config(project, c, a.rounds, label_of, a.min_purity) for c in a.configs.split(",")]
    print(f"\n{'config':>22} {'approved':>8} {'clusters':>8} {'obj/cluster':>11} {'classes':>7} {'seconds':>8}")
    for s in summary:
        print(f"{s['name']:>22} {s['approved']:>8.3f} {s['clusters']:>8} {s['per_cluster']:>11.1f} "
              f"{s['classes']:>7} {s['seconds']:>8.0f}")
    print("\nWhy the defaults:\n" + REASONING)
    project.close()


if __name__ == "__main__":
    main()
