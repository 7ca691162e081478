"""Annotation efficiency on PlanktonSet-dev with the simulated annotator.

Builds (or reuses) a project of ../shared/data/planktonset-dev through the project's own
pipeline (folder import with labels from folders, default feature extractor; `--features FILE`
uses precomputed features instead), then runs each preset on it and prints the table:

  (a) faithful: the original MorphoCluster procedure (PCA 64, HDBSCAN leaf 128 then 64,
      approve/dissolve, grow by 16 k-means prototypes with page-level exponential search and
      bisection);
  (b) best: this tool's workflow (with `--assist`, also best plus assisted sorting by
      suggestions, `morphocluster.simulate.assist`).

Rerun:
  nice python benchmarks/simulate_planktonset.py --features /work/cache/planktonset_effnet128.h5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "planktonset-dev"


def build_project(work: Path, data: Path, features: str | None):
    from sqlalchemy import func, select

    from morphocluster.features.extract import DEFAULT, extract_features
    from morphocluster.features.registry import default_name
    from morphocluster.importers import import_sources
    from morphocluster.project import Project
    from morphocluster.store import Object

    root = work / "project"
    spec = f"external:{features}" if features else DEFAULT
    if (root / "morphocluster.json").is_file():
        project = Project.open(root)
        with project.session() as s:
            n = s.scalar(select(func.count()).select_from(Object))
        active = project.config.get("active_features")
        if n and active:
            print(f"reusing {root} ({n} objects, features {active})")
            if active != default_name(spec):  # other features asked for: add and use them
                t = time.time()
                name = extract_features(project, spec, progress=True)
                print(f"features {name} (instead of {active}) in {time.time() - t:.0f} s")
            return project
        project.close()
        import shutil

        shutil.rmtree(root)
    project = Project.create(root)
    t = time.time()
    rep = import_sources(project, [data], labels_from_folders=True, progress=False)
    print(f"imported {rep.added} objects in {time.time() - t:.0f} s")
    t = time.time()
    name = extract_features(project, spec, progress=True)
    print(f"features {name} in {time.time() - t:.0f} s")
    return project


def project_args(ap, work: str, out: bool = True) -> None:
    """Add --data, --features, --work (and --out): the options of every benchmark that runs on
    the project `build_project` makes."""
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--features", help="precomputed features (HDF5 with object_id, features)")
    ap.add_argument("--work", type=Path, default=Path(work))
    if out:
        ap.add_argument("--out", type=Path, default=None, help="JSON, curve.png, table.txt (default WORK/out)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    project_args(ap, "/tmp/mc-simulate-planktonset")
    ap.add_argument("--presets", default="faithful,best", help="comma-separated; '' for none "
                    "(only the --assist and --learn runs)")
    ap.add_argument("--assist", action="store_true",
                    help="also run 'best' with assisted sorting (morphocluster.simulate.assist)")
    ap.add_argument("--learn", action="store_true",
                    help="also run 'best' with assisted sorting and the learn job (morphocluster."
                         "simulate.learning); the learnt feature sets stay in WORK/project/features")
    ap.add_argument("--learn-epochs", type=int, default=None, help="epochs of each learn job")
    ap.add_argument("--final-phase", action="append", default=[], metavar="MODULE:FUNCTION",
                    help="also run 'best' with this phase after its rounds (e.g. assisted sorting)")
    args = ap.parse_args(argv)

    from morphocluster.simulate import Simulator, imported_truth, preset, reset_annotations
    from morphocluster.simulate.report import table, write_all

    project = build_project(args.work, args.data, args.features)
    truth = imported_truth(project)
    results = {}
    runs = [(name, preset(name)) for name in args.presets.split(",") if name]
    if args.final_phase:
        label = "best+" + "+".join(p.rpartition(":")[2] for p in args.final_phase)
        runs.append((label, preset("best", name=label, final_phases=tuple(args.final_phase))))
    if args.assist:
        runs.append(("best+assist", preset(
            "best", name="best+assist", extra_phases=("morphocluster.simulate.assist:assist",),
            final_phases=("morphocluster.simulate.assist:assist_final",))))
    extra = {name: {} for name, _ in runs}
    if args.learn:
        from morphocluster.simulate.learning import with_learning
        from morphocluster.simulate.assist import phases as assist_phases

        runs.append(("best+assist+learn", preset("best", name="best+assist+learn")))
        extra["best+assist+learn"] = with_learning(assist_phases(), True, args.learn_epochs)
    active = project.config.get("active_features")
    for name, settings in runs:
        reset_annotations(project)
        print(f"--- {name}: {settings}")
        try:
            results[name] = Simulator(project, truth, settings, log=print, **extra[name]).run().to_dict()
        finally:  # a learn job may have switched the features: the next run starts as this one did
            if project.config.get("active_features") != active:
                from morphocluster.features import set_active
                from morphocluster.index import build_index

                set_active(project, active)
                build_index(project)
    out = args.out or args.work / "out"
    write_all(results, out)
    print()
    print(table(results))
    print(f"\nresults in {out}")
    print("rerun: nice python benchmarks/simulate_planktonset.py" + f" --work {args.work}" +
          (f" --presets '{args.presets}'" if args.presets != "faithful,best" else "") +
          (f" --features {args.features}" if args.features else "") +
          "".join(f" --final-phase {p}" for p in args.final_phase) + (" --assist" if args.assist else "") +
          (" --learn" if args.learn else "") +
          (f" --learn-epochs {args.learn_epochs}" if args.learn_epochs else ""))
    for name, r in results.items():
        for row in r.get("learning") or []:
            print(f"{name}: learn {row['where']}: {row['name']}, {row['n_labels']} labels "
                  f"({row['n_heldout']} held out), {row['n_pseudo']} pseudo-labels, held-out "
                  f"accuracy {_pct(row['heldout_new'])} (new) vs {_pct(row['heldout_old'])} (active), "
                  f"switched {row['switched']}, "
                  f"{row['seconds']:.0f} s, {row['cpu_seconds']:.0f} CPU s")
    return 0


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


if __name__ == "__main__":
    sys.exit(main())
