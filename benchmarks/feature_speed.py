"""Extraction speed (images/s) and peak memory of each extractor on this machine.

Imports N planktonset-dev images (every k-th file, all classes) into a temporary project and
runs `morphocluster.features.extract.extract_features` once per configuration, each in a
fresh process so that its peak RSS (main process; DataLoader workers reported apart) is its
own. Timing covers the whole call (model load, decoding, inference, HDF5 writes).

Rerun:  nice python benchmarks/feature_speed.py [--n 512] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "planktonset-dev"

CONFIGS = [  # (extractor, size, workers, batch)
    ("pixels", 32, 1, 64),
    ("morphometric", None, 1, 64),
    ("efficientnet-lite0", 96, 1, 64),
    ("efficientnet-lite0", 128, 0, 64),
    ("efficientnet-lite0", 128, 1, 64),
    ("efficientnet-lite0+morphometric", 128, 1, 64),  # the default
    ("efficientnet-lite0", 224, 1, 64),
]


def make_project(root: Path, data: Path, n: int):
    import shutil

    from morphocluster.importers import import_sources
    from morphocluster.project import Project

    files = sorted(data.rglob("*.jpg"))
    step = max(1, len(files) // n)
    src = root / "src"
    for f in files[::step][:n]:
        (src / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, src / f.parent.name / f.name)
    p = Project.create(root / "project")
    import_sources(p, [src], labels_from_folders=True, progress=False)
    return root / "project"


def one(project_dir, extractor, size, workers, batch, device):
    """Run one extraction; print a JSON line with its figures."""
    import torch

    from morphocluster.features.extract import extract_features, project_objects
    from morphocluster.project import Project

    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    from morphocluster.features import feature_path

    p = Project.open(project_dir)
    n = len(project_objects(p)[0])
    # a complete set of the same extractor would only be topped up: time a full extraction
    feature_path(p, "speed").unlink(missing_ok=True)
    t = time.perf_counter()
    extract_features(p, extractor, name="speed", size=size, num_workers=workers, batch_size=batch,
                     device=device, progress=False, activate=False)
    dt = time.perf_counter() - t
    print(json.dumps({"n": n, "seconds": dt, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "workers_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--one", nargs=5, metavar=("PROJECT", "EXTRACTOR", "SIZE", "WORKERS", "BATCH"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        proj, ex, size, workers, batch = args.one
        one(proj, ex, None if size == "-" else int(size), int(workers), int(batch), args.device)
        return
    with tempfile.TemporaryDirectory() as tmp:
        proj = make_project(Path(tmp), args.data, args.n)
        rows = []
        for ex, size, workers, batch in CONFIGS:
            cmd = [sys.executable, __file__, "--device", args.device, "--one", str(proj), ex,
                   "-" if size is None else str(size), str(workers), str(batch)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((ex, size, workers, batch, r))
            print(f"done {ex} {size} w{workers}: {r}", flush=True)
    print(f"\n{args.n} planktonset-dev images, device {args.device}, {os.cpu_count()} CPUs "
          f"(load average at end {os.getloadavg()[0]:.1f})")
    print(f"{'extractor':20s} {'size':>5s} {'workers':>7s} {'batch':>5s} {'img/s':>8s} {'peak RSS MiB':>13s} "
          f"{'worker RSS':>11s}")
    for ex, size, workers, batch, r in rows:
        print(f"{ex:20s} {size or '-':>5} {workers:7d} {batch:5d} {r['n'] / r['seconds']:8.1f} "
              f"{r['rss_mib']:13.0f} {r['workers_rss_mib']:11.0f}")
    print(f"rerun: nice python benchmarks/feature_speed.py --n {args.n} --device {args.device}")


if __name__ == "__main__":
    main()
