"""Import at scale: N small images as a class-folder tree and as an EcoTaxa export (TSV + images).

Run:  nice python benchmarks/import_scale.py --n 100000 [--n 1000000] [--link] [--copy]
The source is made by hard-linking the real images of ../shared/data/planktonset-dev (read
only; never written) under unique names, 1000 per folder, into bench-out/ (git-ignored); the
EcoTaxa variant adds an ecotaxa_*.tsv of 20 columns naming them. Each source is imported into
a fresh project by a child process, which reports its own peak RSS (VmHWM, read just before it
exits). The table gives objects/s, the child's peak RSS and the most entries of any folder
under the project's images/. "copy" is the default import, "link" is `import --link`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "planktonset-dev"
PER_FOLDER = 1000
COLUMNS = [("object_id", "t"), ("object_lat", "f"), ("object_lon", "f"), ("object_date", "t"),
           ("object_time", "t"), ("object_depth_min", "f"), ("object_depth_max", "f"),
           ("object_annotation_status", "t"), ("object_annotation_category", "t"),
           ("img_file_name", "t"), ("img_rank", "f"), ("object_width", "f"), ("object_height", "f"),
           ("object_area", "f"), ("object_mean", "f"), ("object_major", "f"), ("object_minor", "f"),
           ("sample_id", "t"), ("acq_id", "t"), ("process_id", "t")]


def real_images() -> list[tuple[str, str]]:
    """(class, path) of every planktonset-dev image, in a stable order."""
    return [(c.name, str(p)) for c in sorted(DATA.iterdir()) if c.is_dir() for p in sorted(c.glob("*.jpg"))]


def _place(src: str, dest: str) -> None:
    try:
        os.link(src, dest)
    except OSError:  # another file system: copy
        shutil.copyfile(src, dest)


def make_folder(root: Path, n: int, images) -> None:
    """root/<k>/<class>/<class>_<i>.jpg, at most PER_FOLDER files per folder."""
    counts: dict[str, int] = {}
    for i in range(n):
        cls, src = images[i % len(images)]
        k = counts.get(cls, 0)
        counts[cls] = k + 1
        folder = root / f"{k // PER_FOLDER:04d}" / cls
        if k % PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        _place(src, str(folder / f"{cls}_{i:08d}.jpg"))


def make_ecotaxa(root: Path, n: int, images) -> None:
    """root/ecotaxa_scale.tsv and root/images/<k>/obj_<i>.jpg, the TSV naming each image."""
    with open(root / "ecotaxa_scale.tsv", "w", encoding="utf-8", newline="") as tsv:
        tsv.write("\t".join(c for c, _ in COLUMNS) + "\n" + "\t".join(f"[{t}]" for _, t in COLUMNS) + "\n")
        for i in range(n):
            cls, src = images[i % len(images)]
            rel = f"images/{i // PER_FOLDER:04d}/obj_{i:08d}.jpg"
            if i % PER_FOLDER == 0:
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
            _place(src, str(root / rel))
            row = [f"obj_{i:08d}", f"{25 + i % 1000 / 1e3:.4f}", f"{-80 + i % 997 / 1e3:.4f}", "20140612",
                   f"{i % 24:02d}{i % 60:02d}{i % 59:02d}", "5", "25", "validated", cls, rel, "1",
                   str(50 + i % 40), str(48 + i % 37), str(900 + i % 500), f"{120 + i % 90:.1f}",
                   f"{60 + i % 30:.2f}", f"{40 + i % 20:.2f}", f"isiis_{i // 100000}", f"acq_{i // 10000}",
                   "proc_1"]
            tsv.write("\t".join(row) + "\n")


def largest_folder(path: Path) -> int:
    """The most entries of any folder below `path` (and of `path` itself)."""
    most, stack = 0, [str(path)]
    while stack:
        with os.scandir(stack.pop()) as it:
            n = 0
            for e in it:
                n += 1
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
        most = max(most, n)
    return most


def child(source: str, project_dir: str, fmt: str, link: bool) -> None:
    """Import one source into a new project; print what it did and this process's peak RSS."""
    from morphocluster.importers import import_sources
    from morphocluster.project import Project

    p = Project.create(project_dir)
    t0, c0 = time.perf_counter(), time.process_time()
    r = import_sources(p, [source], format=fmt, progress=False, link=link)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    p.close()
    status = Path("/proc/self/status").read_text()
    hwm = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:"))
    print(json.dumps({"added": r.added, "failed": r.failed, "seconds": seconds, "cpu_s": cpu,
                      "vmhwm_kib": hwm}))


def run(variant: str, source: Path, work: Path, link: bool) -> dict:
    project = work / f"proj-{variant}-{'link' if link else 'copy'}"
    shutil.rmtree(project, ignore_errors=True)
    fmt = "class-folders" if variant == "folder" else "ecotaxa"
    load = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--child", str(source), str(project), fmt] + (["--link"] if link else [])
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise SystemExit(f"child failed:\n{out.stderr}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(variant=variant, mode="link" if link else "copy", load=load,
               largest=largest_folder(project / "images"))
    shutil.rmtree(project)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, action="append", help="objects per source (repeatable; default 100000)")
    ap.add_argument("--variants", default="folder,ecotaxa")
    ap.add_argument("--link", action="store_true", help="measure `import --link` too")
    ap.add_argument("--no-copy", action="store_true", help="leave out the default (copying) import")
    ap.add_argument("--work", type=Path, default=REPO / "bench-out" / "import-scale")
    ap.add_argument("--keep", action="store_true", help="keep the generated sources for a rerun")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child, link=args.link)
        return 0
    ns = args.n or [100000]
    modes = ([False] if not args.no_copy else []) + ([True] if args.link else [])
    images = real_images()
    results = []
    for n in ns:
        for variant in args.variants.split(","):
            source = args.work / f"src-{variant}-{n}"
            if not source.is_dir():
                t0 = time.perf_counter()
                source.mkdir(parents=True)
                (make_folder if variant == "folder" else make_ecotaxa)(source, n, images)
                print(f"made {source} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            for link in modes:
                results.append(run(variant, source, args.work, link))
                print(json.dumps(results[-1]), file=sys.stderr)
            if not args.keep:
                shutil.rmtree(source)
    print(f"{'source':<8} {'mode':<5} {'objects':>9} {'failed':>6} {'seconds':>8} {'objects/s':>9} "
          f"{'CPU ms/obj':>10} {'peak RSS':>9} {'largest folder':>14} {'load avg':>8}")
    for r in results:
        print(f"{r['variant']:<8} {r['mode']:<5} {r['added']:>9} {r['failed']:>6} {r['seconds']:>8.1f} "
              f"{r['added'] / r['seconds']:>9.0f} {r['cpu_s'] * 1e3 / max(1, r['added']):>10.2f} "
              f"{r['vmhwm_kib'] / 1024:>6.0f} MiB {r['largest']:>14} "
              f"{r['load']:>8.1f}")
    print(f"(machine: {os.cpu_count()} CPUs; CPU = the child's user + system time, all threads; load avg = "
          "1-minute load before the run: above 0 means another job shared the CPUs)")
    print("\nrerun: nice " + " ".join([sys.executable, "benchmarks/import_scale.py"]
                                      + [f"--n {n}" for n in ns]
                                      + (["--variants", args.variants] if args.variants != "folder,ecotaxa" else [])
                                      + (["--link"] if args.link else []) + (["--no-copy"] if args.no_copy else [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
