"""Annotation efficiency when features are fine-tuned on the session's own labels mid-way.

Runs the `best` preset with assisted sorting on PlanktonSet-dev (the project of
benchmarks/simulate_planktonset.py), and after clustering round `--after-round` has been
validated, grown and sorted, fine-tunes the CNN (`morphocluster.features.train.train_extractor`, what
`morphocluster train` runs: no clicks, machine time only) on the labels the simulated annotator
has validated so far (never the imported truth), activates the new features, rebuilds the index
and goes on with the next rounds. Prints the usual table.

Measured (EfficientNet-Lite0 features, after round 1, last block fine-tuned): 1.70 whole-set
objects per click on 4,502 validated labels of 22 classes (4 epochs), 1.71 on all 8,372 members
of the approved nodes (8 epochs), against 1.69 without training.

`--maps FILE` reuses the frozen-trunk outputs that benchmarks/feature_quality.py caches
(`maps_tb1_s128.npy`, in Object.id order of the same import), which saves their computation.

Rerun:
  nice python benchmarks/simulate_trained.py --features /work/cache/planktonset_effnet128.h5 \\
      --maps /work/cache/feature_quality/maps_tb1_s128.npy
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np



def session_labels(project, all_members: bool = False) -> dict:
    """object_id -> node name of the validated (or all) members of approved, named nodes."""
    from sqlalchemy import select

    from morphocluster.store import Membership, Node, Object

    with project.session() as s:
        return dict(s.execute(
            select(Object.object_id, Node.name).join(Membership, Membership.object_pk == Object.id)
            .join(Node, Node.id == Membership.node_id)
            .where(Node.status == "approved", Node.name.is_not(None),
                   True if all_members else Membership.status == "validated")).all())


def train_phase(after_round: int, maps, epochs: int, train_blocks: int, all_members: bool):
    def train(sim, r):
        if r != after_round:
            return
        from morphocluster import index
        from morphocluster.features.train import train_extractor

        labels = session_labels(sim.project, all_members)
        t = time.time()
        rep = train_extractor(sim.project, name=f"trained-r{r}", labels=labels, maps=maps,
                              epochs=epochs, train_blocks=train_blocks, progress=False)
        index.build_index(sim.project)
        sim.log(f"trained on {len(labels)} labels of {rep['n_classes']} classes "
                f"in {time.time() - t:.0f} s; features {sim.project.config['active_features']}")
    train.__name__ = "train"
    return train


def main(argv=None) -> int:
    import simulate_planktonset as base  # beside this script

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    base.project_args(ap, "/tmp/mc-simulate-trained")
    ap.add_argument("--maps", type=Path, default=None, help="cached trunk maps (.npy)")
    ap.add_argument("--after-round", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--train-blocks", type=int, default=1)
    ap.add_argument("--all-members", action="store_true",
                    help="train on every member of the approved nodes, not only validated ones")
    args = ap.parse_args(argv)

    from morphocluster.features import set_active
    from morphocluster.simulate import Simulator, imported_truth, preset, reset_annotations
    from morphocluster.simulate.report import table, write_all
    from morphocluster.simulate.assist import phases
    from morphocluster.workflow import suggest as wf

    project = base.build_project(args.work, args.data, args.features)
    first = project.config["active_features"]
    truth = imported_truth(project)
    maps = np.load(args.maps) if args.maps else None
    reset_annotations(project)
    for f in project.cache_dir.glob("suggest_model*"):
        f.unlink()
    wf.forget(project)
    extra = phases()
    extra["extra_phases"] = extra["extra_phases"] + [
        train_phase(args.after_round, maps, args.epochs, args.train_blocks, args.all_members)]
    name = f"best+assist+train@{args.after_round}"
    try:
        res = Simulator(project, truth, preset("best", name=name),
                        log=lambda m: print(m, flush=True), **extra).run()
    finally:
        set_active(project, first)  # the next run starts from the same features
    results = {name: res.to_dict()}
    out = args.out or args.work / "out"
    write_all(results, out)
    print()
    print(table(results))
    print("\nrerun: nice python benchmarks/simulate_trained.py"
          + (f" --features {args.features}" if args.features else "")
          + (f" --maps {args.maps}" if args.maps else "") + f" --after-round {args.after_round}"
          + (" --all-members" if args.all_members else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
