"""Export benchmark: csv and EcoTaxa TSV (no images) of N synthetic labelled objects.

Builds a throw-away project with N objects (EcoTaxa-like metadata), a two-level tree of named
approved nodes and one membership per object (bulk inserts), then runs each export in a fresh
subprocess and reports wall time and peak resident memory (VmHWM of that subprocess), next
to the peak of a subprocess that only opens the project and reads the labels of 1 object: the
difference is what the export itself holds. Memory must not grow with N (streaming).

    nice python benchmarks/export_bench.py --n 1000000 [--n 100000] [--keep DIR] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

CHUNK = 50_000
N_TOP, N_LEAF = 20, 10  # 20 umbrellas x 10 approved leaves; one leaf name repeats (ambiguous)
META_COLS = [("object_id", "t"), ("object_lat", "f"), ("object_lon", "f"), ("object_depth_min", "f"),
             ("object_area", "f"), ("sample_id", "t"), ("acq_instrument", "t")]


def build(root: Path, n: int) -> float:
    """Create the project with n labelled objects; return seconds taken."""
    from sqlalchemy import insert

    from morphocluster.project import Project
    from morphocluster.store import ImportRun, Membership, Meta, Node, Object, User

    t0 = time.perf_counter()
    p = Project.create(root)
    when = datetime(2024, 6, 1, 12, 0, 0)
    with p.transaction() as s:
        s.add(User(id=1, username="bench", password_hash="!"))
        s.add(Meta(key="ecotaxa_columns", value=[list(c) for c in META_COLS]))
        s.add(ImportRun(id=1, source="synthetic", format="ecotaxa"))
        nodes, leaves = [], []
        for t in range(N_TOP):
            nodes.append({"id": t + 1, "name": f"group {t}", "status": "candidate"})
        for t in range(N_TOP):
            for k in range(N_LEAF):
                nid = N_TOP + 1 + t * N_LEAF + k
                name = "part" if k == 0 else f"taxon {t}-{k} é/<"
                nodes.append({"id": nid, "parent_id": t + 1, "name": name, "status": "approved"})
                leaves.append(nid)
        s.execute(insert(Node), nodes)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        objs = [{"id": i + 1, "object_id": f"obj_{i:08d}", "path": f"img/obj_{i:08d}.jpg", "import_id": 1,
                 "meta": {"object_id": f"obj_{i:08d}", "object_lat": f"{43 + i % 1000 / 1000:.3f}",
                          "object_lon": f"{7 + i % 997 / 997:.3f}", "object_depth_min": str(i % 500),
                          "object_area": str(100 + i % 9000), "sample_id": f"s{i // 10000}",
                          "acq_instrument": "UVP6"}} for i in range(start, stop)]
        mems = [{"object_pk": i + 1, "node_id": leaves[i % len(leaves)], "added_by": 1,
                 "status": "validated" if i % 3 else "predicted", "added_at": when}
                for i in range(start, stop)]
        with p.transaction() as s:
            s.execute(insert(Object), objs)
            s.execute(insert(Membership), mems)
    p.close()
    return time.perf_counter() - t0


def child(project: str, fmt: str, out: str, trace: bool) -> None:
    """Run one export (or 'baseline') in this process and print its figures as JSON."""
    import tracemalloc

    from morphocluster.export import export
    from morphocluster.labels import object_labels
    from morphocluster.project import Project

    if trace:
        tracemalloc.start()
    p = Project.open(project)
    t0 = time.perf_counter()
    if fmt == "baseline":
        next(iter(object_labels(p, with_meta=True)))
        n = 1
    else:
        n = export(p, fmt, out, labels="validated").n_objects
    dt = time.perf_counter() - t0
    peak_py = tracemalloc.get_traced_memory()[1] if trace else None
    rss = peak_rss_mib()
    size = Path(out).stat().st_size / 2**20 if fmt != "baseline" else 0.0
    print(json.dumps({"fmt": fmt, "n": n, "seconds": dt, "rss_mib": rss, "out_mib": size,
                      "py_peak_mib": None if peak_py is None else peak_py / 2**20}))


def peak_rss_mib() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would carry the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)


def run_child(project: Path, fmt: str, out: Path, trace: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", fmt, "--project", str(project), "--out", str(out)]
    if trace:
        cmd.append("--tracemalloc")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="objects (repeatable; default 1000000)")
    ap.add_argument("--keep", type=Path, help="build the projects here and keep them")
    ap.add_argument("--tracemalloc", action="store_true", help="also measure the Python heap peak (slower)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--project", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.project, args.child, args.out, args.tracemalloc)
        return
    sizes = args.n or [1_000_000]
    base = args.keep or Path(tempfile.mkdtemp(prefix="export-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in sizes:
            proj = base / f"proj-{n}"
            if proj.exists():
                shutil.rmtree(proj)
            build_s = build(proj, n)
            print(f"built {n:,} labelled objects in {build_s:.1f} s", file=sys.stderr)
            baseline = run_child(proj, "baseline", base / "none", args.tracemalloc)
            for fmt, out in (("csv", base / f"labels-{n}.csv"), ("ecotaxa", base / f"ecotaxa-{n}.zip")):
                r = run_child(proj, fmt, out, args.tracemalloc)
                r["baseline_rss_mib"] = baseline["rss_mib"]
                rows.append(r)
                out.unlink(missing_ok=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print()
    head = (f"{'format':<8} {'objects':>10} {'seconds':>8} {'objects/s':>10} {'peak RSS MiB':>12} "
            f"{'baseline MiB':>12} {'output MiB':>10}" + (f" {'py heap MiB':>11}" if args.tracemalloc else ""))
    print(head)
    print("-" * len(head))
    for r in rows:
        line = (f"{r['fmt']:<8} {r['n']:>10,} {r['seconds']:>8.1f} {r['n'] / r['seconds']:>10,.0f} "
                f"{r['rss_mib']:>12.0f} {r['baseline_rss_mib']:>12.0f} {r['out_mib']:>10.1f}")
        if args.tracemalloc:
            line += f" {r['py_peak_mib']:>11.1f}"
        print(line)
    print("\nrerun: nice python benchmarks/export_bench.py " + " ".join(f"--n {n}" for n in sizes)
          + (" --tracemalloc" if args.tracemalloc else ""))


if __name__ == "__main__":
    main()
