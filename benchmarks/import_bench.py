"""Import speed and disk use: all planktonset-dev images into a fresh project.

Run:  nice python benchmarks/import_bench.py [--source ../shared/data/planktonset-dev] [--repeat 1]
Prints objects/s for a first import and for a re-import of the same source (all skipped),
and the project's size on disk (images, database).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "planktonset-dev"


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def run_once(source: Path, database_url: str | None, work: Path) -> dict:
    from morphocluster.importers import import_sources
    from morphocluster.project import Project

    root = work / "proj"
    project = Project.create(root, database_url=database_url)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        first = import_sources(project, [source], labels_from_folders=True, progress=False)
        t1, c1 = time.perf_counter(), time.process_time()
        again = import_sources(project, [source], labels_from_folders=True, progress=False)
        t2 = time.perf_counter()
    finally:
        project.close()
    db = sum(f.stat().st_size for f in root.glob("project.sqlite*"))
    out = {"added": first.added, "failed": first.failed, "first_s": t1 - t0, "first_cpu_s": c1 - c0,
           "skipped": again.skipped, "again_s": t2 - t1,
           "images_bytes": _du(root / "images"), "db_bytes": db, "total_bytes": _du(root)}
    shutil.rmtree(root)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite in the project)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    if not args.source.is_dir():
        print(f"source {args.source} not found", file=sys.stderr)
        return 1
    n_files = sum(1 for f in args.source.rglob("*") if f.is_file())
    src_bytes = _du(args.source)
    runs = []
    with tempfile.TemporaryDirectory(prefix="mc-import-bench-") as tmp:
        for _ in range(args.repeat):
            runs.append(run_once(args.source, args.database_url, Path(tmp)))
    best = min(runs, key=lambda r: r["first_s"])
    db = "PostgreSQL" if args.database_url else "SQLite"
    rows = [
        ("source", f"{args.source} ({n_files} files, {_mb(src_bytes)})"),
        ("machine", f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {db}"),
        ("first import", f"{best['added']} added, {best['failed']} failed in {best['first_s']:.2f} s "
                         f"= {best['added'] / best['first_s']:.0f} objects/s"),
        ("first import CPU time", f"{best['first_cpu_s']:.2f} s (all threads; wall time suffers on a busy "
                                  f"machine, load average {os.getloadavg()[0]:.1f})"),
        ("re-import (all skipped)", f"{best['skipped']} skipped in {best['again_s']:.2f} s "
                                    f"= {best['skipped'] / best['again_s']:.0f} objects/s"),
        ("project images/", _mb(best["images_bytes"])),
        ("project database", _mb(best["db_bytes"])),
        ("project total", _mb(best["total_bytes"])),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if args.repeat > 1:
        print(f"(best of {args.repeat} runs; first-import times: "
              + ", ".join(f"{r['first_s']:.2f}" for r in runs) + " s)")
    print(f"\nrerun: nice {sys.executable} benchmarks/import_bench.py --source {args.source}"
          + (f" --repeat {args.repeat}" if args.repeat > 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
