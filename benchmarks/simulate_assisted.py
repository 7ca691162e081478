"""Annotation efficiency on PlanktonSet-dev with and without assisted sorting (suggestions).

Builds (or reuses) the project of benchmarks/simulate_planktonset.py (folder import with labels
from folders, default features; `--features FILE` uses precomputed features), then runs the
simulated annotator with a preset (default `best`) twice: clusters only, and clusters plus the
sort-suggestions phase (`morphocluster.simulate.assist`). Prints the table (whole-set objects
per click, whole-set precision, coverage, clicks by kind) and writes curve.png (coverage and
precision against clicks), the JSON results and table.txt.

Rerun:
  nice python benchmarks/simulate_assisted.py --features /work/cache/planktonset_effnet128.h5
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    import simulate_planktonset as base  # beside this script

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    base.project_args(ap, "/tmp/mc-simulate-assisted")
    ap.add_argument("--preset", default="best")
    ap.add_argument("--variants", default="clusters,assisted",
                    help="comma list of clusters (no suggestions) and assisted")
    ap.add_argument("--settings", default="{}",
                    help='JSON overrides of the preset\'s Settings, e.g. \'{"rounds": [64, 32]}\'')
    ap.add_argument("--assist", default="{}",
                    help='JSON overrides of AssistSettings, e.g. \'{"accept_precision": 0.98}\'')
    args = ap.parse_args(argv)

    from morphocluster.simulate import Simulator, imported_truth, preset, reset_annotations
    from morphocluster.simulate.report import table, write_all
    from morphocluster.simulate.assist import AssistSettings, phases
    from morphocluster.workflow import suggest as wf

    project = base.build_project(args.work, args.data, args.features)
    truth = imported_truth(project)
    assist = AssistSettings(**json.loads(args.assist))
    results = {}
    for variant in args.variants.split(","):
        reset_annotations(project)
        for f in project.cache_dir.glob("suggest_model*"):
            f.unlink()
        wf.forget(project)
        settings = preset(args.preset, **{k: tuple(v) if isinstance(v, list) else v
                                           for k, v in json.loads(args.settings).items()})
        extra = phases(assist) if variant == "assisted" else {}
        name = f"{args.preset}+{variant}"
        print(f"--- {name}: {settings}" + (f" {assist}" if extra else ""), flush=True)
        res = Simulator(project, truth, settings, log=lambda m: print(m, flush=True), **extra).run()
        results[name] = res.to_dict()
        if extra:
            results[name]["assist"] = assist.__dict__
    out = args.out or args.work / "out"
    write_all(results, out)
    print()
    print(table(results))
    print(f"\nwrote {out}/curve.png, table.txt and the JSON results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
