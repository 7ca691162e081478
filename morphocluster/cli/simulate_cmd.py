"""`morphocluster simulate`: measure annotation efficiency with a simulated annotator."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from . import open_project


def rounds_for(base: tuple, n: int | None) -> tuple:
    """Cut or extend the preset's min_cluster_size schedule to n rounds (halving, floor 8)."""
    if not n:
        return tuple(base)
    out = list(base[:n])
    while len(out) < n:
        out.append(max(8, out[-1] // 2))
    return tuple(out)


def _has_annotations(project) -> bool:
    from sqlalchemy import func, select

    from ..store import Node

    with project.session() as s:
        return bool(s.scalar(select(func.count()).select_from(Node)))


@click.command("simulate")
@click.argument("project_path", metavar="PROJECT", type=click.Path(file_okay=False))
@click.option("--truth", default="imported-labels", show_default=True,
              type=click.Choice(["imported-labels"]), help="Where the true classes come from.")
@click.option("--preset", "preset_name", default="best", show_default=True,
              type=click.Choice(["best", "faithful"]), help="Annotator behaviour.")
@click.option("--rounds", type=int, default=None, help="Clustering rounds (default: the preset's).")
@click.option("--min-cluster-size", "sizes", type=int, multiple=True,
              help="min_cluster_size of each round, repeat for several (default: the preset's).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for <preset>.json, curve.png and table.txt.")
@click.option("--phase", "phases", multiple=True, metavar="MODULE:FUNCTION",
              help="An extra phase run every round (e.g. assisted sorting); repeatable.")
@click.option("--final-phase", "final_phases", multiple=True, metavar="MODULE:FUNCTION",
              help="A phase run once after the last round; repeatable.")
@click.option("--in-place", is_flag=True,
              help="Simulate in PROJECT itself, which must have no nodes yet; default: on a "
                   "copy without annotations.")
@click.option("--assist", is_flag=True,
              help="Also sort by suggestions after each round (morphocluster.simulate.assist).")
@click.option("--learn", is_flag=True,
              help="Also run the learn job where an annotator would (after the first round's "
                   "validation and growth and, with --assist, after its first suggestion pass), "
                   "on the labels given so far; its time is reported (morphocluster.simulate.learning).")
@click.option("--learn-epochs", type=click.IntRange(1), default=None,
              help="Epochs of each learn job (default: the learn job's own, about an hour on "
                   "2 CPU cores for 20,000 images).")
def simulate(project_path, truth, preset_name, rounds, sizes, out, phases, final_phases, in_place, assist,
             learn, learn_epochs):
    """Measure annotation efficiency with a simulated annotator on PROJECT's imported labels."""
    from ..simulate import Simulator, imported_truth, preset, reset_annotations
    from ..simulate.report import table, write_all
    from ..simulate.workcopy import work_copy

    project = open_project(project_path)
    truth_map = imported_truth(project)
    if not truth_map:
        raise click.ClickException(f"{project_path}: no object has an imported label to use as truth")
    settings = preset(preset_name)
    settings = preset(preset_name, rounds=rounds_for(tuple(sizes) or settings.rounds, rounds),
                      extra_phases=settings.extra_phases + tuple(phases),
                      final_phases=settings.final_phases + tuple(final_phases))
    try:
        from ..simulate.annotator import resolve_phase

        for ph in settings.extra_phases + settings.final_phases:
            resolve_phase(ph)
    except (ImportError, AttributeError, ValueError) as exc:
        raise click.ClickException(f"cannot load phase: {exc}") from exc
    if in_place and _has_annotations(project):
        raise click.ClickException(f"{project_path}: already has nodes; --in-place needs a project "
                                   "without annotations (the default simulates on a clean copy)")
    with tempfile.TemporaryDirectory(prefix="mc-simulate-") as tmp:
        work = project
        if not in_place:
            work = work_copy(project, Path(tmp) / "work")
            reset_annotations(work)  # the copy starts from no annotations at all
        try:
            extra = {}
            if assist:
                from ..simulate.assist import phases as assist_phases

                extra = assist_phases()
            if learn:
                from ..simulate.learning import with_learning

                extra = with_learning(extra, assist, learn_epochs)
            result = Simulator(work, truth_map, settings, log=click.echo, **extra).run().to_dict()
        finally:
            if work is not project:
                work.close()
    results = {preset_name + ("+assist" if assist else "") + ("+learn" if learn else ""): result}
    click.echo(table(results))
    if out:
        for p in write_all(results, Path(out)):
            click.echo(f"wrote {p}")
