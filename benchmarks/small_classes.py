"""The small-class regime: whole-set objects per click on subsets of PlanktonSet-dev whose
classes hold 10 to 20 objects, before and after the learn job.

Subsets (drawn with a fixed seed from ../shared/data/planktonset-dev, classes with at least 10
images):

  c6x17     6 classes of 16 to 18 objects
  c35x10    35 classes of 10 objects
  c80x10-20 every class, 10 to 20 objects each

Each subset becomes a project through the CLI (`morphocluster init`, `import` with labels from
the class folders, `features` with the default extractor), then the CLI's simulated annotator
runs on it twice: `morphocluster simulate P --assist` (before) and `morphocluster simulate P
--assist --learn` (after: the learn job with its default, untuned settings, at the points an
annotator would run it). The table prints both, with the learn job's CPU time.

Rerun:
  nice python benchmarks/small_classes.py --work /work/cache/small-classes
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "planktonset-dev"
SUBSETS = {"c6x17": (6, 16, 18), "c35x10": (35, 10, 10), "c80x10-20": (None, 10, 20)}
EXE = [str(Path(sys.executable).parent / "morphocluster")]  # the CLI beside this Python


def build_subset(data: Path, dst: Path, n_classes, lo: int, hi: int, seed: int = 0) -> int:
    """Copy a subset into dst/<class>/ (n_classes None: every class with >= lo images)."""
    rng = np.random.default_rng(seed)
    classes = sorted(d.name for d in data.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= lo)
    if n_classes is not None:
        classes = sorted(rng.choice(classes, n_classes, replace=False))
    n = 0
    for c in classes:
        files = sorted((data / c).glob("*.jpg"))
        take = rng.choice(len(files), min(len(files), int(rng.integers(lo, hi + 1))), replace=False)
        (dst / c).mkdir(parents=True)
        for i in sorted(take):
            shutil.copy2(files[i], dst / c / files[i].name)
            n += 1
    return n


def cli(*args) -> str:
    res = subprocess.run(EXE + [str(a) for a in args], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"morphocluster {' '.join(map(str, args))} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


def project_for(work: Path, name: str, data: Path) -> Path:
    root = work / name / "project"
    if (root / "features").is_dir() and any((root / "features").glob("*.h5")):
        return root
    shutil.rmtree(work / name, ignore_errors=True)
    n_classes, lo, hi = SUBSETS[name]
    n = build_subset(data, work / name / "images", n_classes, lo, hi)
    print(f"{name}: {n} images")
    cli("init", root)
    cli("import", root, work / name / "images", "--format", "class-folders")
    cli("features", root)
    return root


def run(root: Path, out: Path, learn: bool, epochs) -> dict:
    args = ["simulate", root, "--assist", "--out", out]
    if learn:
        args += ["--learn"] + (["--learn-epochs", epochs] if epochs else [])
    t = time.time()
    cli(*args)
    (res,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    res["wall"] = time.time() - t
    return res


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--work", type=Path, default=Path("/tmp/mc-small-classes"))
    ap.add_argument("--subsets", default=",".join(SUBSETS))
    ap.add_argument("--learn-epochs", type=int, default=None, help="epochs of each learn job (default: its own)")
    args = ap.parse_args(argv)
    rows = []
    for name in args.subsets.split(","):
        root = project_for(args.work, name, args.data)
        for learn in (False, True):
            out = args.work / name / ("after" if learn else "before")
            shutil.rmtree(out, ignore_errors=True)
            r = run(root, out, learn, args.learn_epochs)
            rows.append((name, "after" if learn else "before", r))
            print(f"{name} {'learn' if learn else 'no learn'}: {r['whole_set_objects_per_click']:.2f} "
                  f"per click at {r['whole_set_precision']:.1%}", flush=True)
    print(f"\n{'subset':<10} {'':<7} {'objects':>7} {'classes':>7} {'clicks':>6} {'obj/click':>9} "
          f"{'precision':>9} {'learn CPU s':>11}  clicks by kind; learn jobs")
    for name, when, r in rows:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["clicks_by_kind"].items()) if v)
        learned = "; ".join(f"{x['where']}: held-out {_pct(x['heldout_new'])} new vs {_pct(x['heldout_old'])} active"
                            f"{' switched' if x['switched'] else ''}" for x in r.get("learning") or [])
        cpu = r.get("learn_cpu_seconds")
        print(f"{name:<10} {when:<7} {r['objects']:7d} {r['classes_total']:7d} {r['clicks']:6d} "
              f"{r['whole_set_objects_per_click']:9.2f} {r['whole_set_precision']:9.1%} "
              f"{cpu if cpu is not None else '-':>11}  {kinds}; {learned}")
    print("\nrerun: nice python benchmarks/small_classes.py" + (f" --work {args.work}") +
          (f" --subsets {args.subsets}" if args.subsets != ",".join(SUBSETS) else "") +
          (f" --learn-epochs {args.learn_epochs}" if args.learn_epochs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
