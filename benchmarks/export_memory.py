"""Peak RSS of the CSV, EcoTaxa ZIP with images and HDF5 exports at N synthetic objects.

Builds a project per N with `export_bench.build` (N labelled objects, 2 of 3 validated),
hard-links one real PlanktonSet JPEG (read only) as every object's image, writes a 32-wide
float32 feature set in Object.id order, then runs each export (`--labels all`) in a fresh child
process and reports its seconds and peak RSS (ru_maxrss of a wrapper whose only child it is).
Projects and outputs go to bench-out/export-memory/ (git-ignored).

Run:  nice python benchmarks/export_memory.py --n 100000 --n 300000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = REPO / "bench-out" / "export-memory"
JPG = str(REPO.parent / "shared" / "data" / "planktonset-dev"
          / "echinoderm_seacucumber_auricularia_larva" / "31107.jpg")


def build(root: Path, n: int):
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.path.insert(0, str(REPO))
    import numpy as np
    from sqlalchemy import select
    from export_bench import build as build_db
    from morphocluster.features.h5 import feature_path, set_active, write_features
    from morphocluster.project import Project
    from morphocluster.store import Object

    build_db(root, n)
    p = Project.open(root)
    img = p.images_dir / "img"
    img.mkdir(parents=True, exist_ok=True)
    import shutil
    for i in range(n):
        if i % 60_000 == 0:  # a file takes at most 65,000 links
            base = img.parent / f"base-{i}.jpg"
            shutil.copyfile(JPG, base)
        os.link(base, img / f"obj_{i:08d}.jpg")
    with p.session() as s:
        ids = s.scalars(select(Object.object_id).order_by(Object.id)).all()
    X = np.random.default_rng(0).normal(size=(len(ids), 32)).astype(np.float32)
    write_features(feature_path(p, "bench"), ids, X, {"extractor": "bench"})
    set_active(p, "bench")
    p.close()


def child(project, fmt, out):
    from morphocluster.export import export
    from morphocluster.project import Project
    p = Project.open(project)
    t = time.perf_counter()
    rep = export(p, fmt, out, labels="all", with_images=fmt == "ecotaxa")
    print(json.dumps({"n": rep.n_objects, "images": rep.n_images, "s": time.perf_counter() - t}))


def run(project, fmt, out):
    env = dict(os.environ)
    # a wrapper whose only child is the export: its RUSAGE_CHILDREN ru_maxrss is the export's
    wrap = ("import resource,subprocess,sys,json;"
            "r=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
            "print(r.stdout.strip().splitlines()[-1] if r.returncode==0 else 'ERR '+r.stderr[-800:]);"
            "print(json.dumps({'maxrss_mib':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024}))")
    cmd = [sys.executable, "-c", wrap, "nice", sys.executable, __file__, "--child", fmt,
           "--project", str(project), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    a, b = res.stdout.strip().splitlines()[-2:]
    if a.startswith("ERR"):
        raise SystemExit(a)
    return {**json.loads(a), **json.loads(b)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, action="append", help="objects (repeatable; default 100000)")
    ap.add_argument("--child")
    ap.add_argument("--project")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.child:
        return child(a.project, a.child, a.out)
    HERE.mkdir(parents=True, exist_ok=True)
    print(f"{'format':<8} {'objects':>10} {'images':>10} {'seconds':>8} {'peak RSS MiB':>13}")
    for n in a.n or [100_000]:
        proj = HERE / f"proj-{n}"
        if not proj.exists():
            t = time.perf_counter()
            build(proj, n)
            print(f"built {n:,} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        for fmt, suf in (("csv", ".csv"), ("ecotaxa", ".zip"), ("hdf5", ".h5")):
            out = HERE / f"out-{n}{suf}"
            out.unlink(missing_ok=True)
            r = run(proj, fmt, out)
            out.unlink(missing_ok=True)
            print(f"{fmt:<8} {n:>10,} {r['images']:>10,} {r['s']:>8.1f} {r['maxrss_mib']:>13.0f}", flush=True)
    print("\nrerun: nice python benchmarks/export_memory.py" + "".join(f" --n {n}" for n in a.n or [100_000]))


if __name__ == "__main__":
    main()
