"""`morphocluster learn`: train the whole feature network on the project's images and sorting."""

from __future__ import annotations

import click

from . import open_project

DEVICE = click.Choice(["auto", "cpu", "cuda"])  # as features.learn_job (not imported: a light --help)


@click.command("learn")
@click.argument("project", type=click.Path(file_okay=False))
@click.option("--name", default=None, help="Name of the new feature set (default: learned-N, the next free N).")
@click.option("--epochs", default=None, type=click.IntRange(1, 1000),
              help="Passes over all images (default: about 5000 steps, 1 to 50 epochs).")
@click.option("--size", default=64, show_default=True, type=click.IntRange(32, 1024),
              help="Input size in pixels, for training and for the new features.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(8, 4096),
              help="Images per step (half of them labelled ones, when there are labels).")
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--workers", type=click.IntRange(0), default=None, help="Image decoding processes.")
@click.option("--invert", is_flag=True, help="Invert grey levels before padding (for the other polarity).")
@click.option("--no-labels", is_flag=True,
              help="Self-supervised only: no labels, no pseudo-labels (then there is no held-out "
                   "check, and the active set stays).")
@click.option("--no-imported", is_flag=True,
              help="Only the labels given by sorting (validated members of approved nodes), not "
                   "the imported validated labels.")
@click.option("--no-pseudo", is_flag=True, help="No pseudo-labels from confident suggestions.")
@click.option("--holdout", default=0.2, show_default=True, type=click.FloatRange(0, 0.9),
              help="Share of each label's objects held out of training for the check; raised "
                   "(up to a half) where that holds out fewer than 20, the fewest it compares on.")
@click.option("--no-switch", is_flag=True,
              help="Do not make the new set active, even when the check finds it better.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**31 - 1))
def learn(project, name, epochs, size, batch_size, device, workers, invert, no_labels, no_imported,
          no_pseudo, holdout, no_switch, seed):
    """Train the whole feature network (EfficientNet-Lite0) on PROJECT's images and sorting.

    Self-supervised on every image (two random views of each must match), supervised on the
    labels the project has (validated members of approved nodes, and imported validated
    labels), with the suggestions' confident guesses as pseudo-labels. The new feature set
    (learned-N) is compared with the active one on labels held out of the training; it becomes
    active (index and suggestion model rebuilt) only when it labels more of them right.

    Checkpointed every 2 minutes and when stopped; run again with the same options to go on.
    About 0.7 s per step of 64 images at 64 px on 2 CPU cores (the default, about 5000
    steps: an hour); minutes on a GPU. `morphocluster train` is the older, lighter job that tunes
    only the network's last blocks.
    """
    from ..features import FeatureError
    from ..features.preprocess import ImageError
    from ..features.learn import learn as run, progress_bar
    from ..features.learn_job import learn_arguments, learn_params, summary_lines

    p = open_project(project)
    try:
        params = learn_params({"name": name, "epochs": epochs, "size": size, "batch_size": batch_size,
                               "device": device, "holdout": holdout, "seed": seed, "invert": invert,
                               "no_labels": no_labels, "no_imported": no_imported,
                               "no_pseudo": no_pseudo, "no_switch": no_switch})
        st, kwargs = learn_arguments(params)
        bar, tell = progress_bar()
        try:
            report = run(p, st, num_workers=workers, progress=tell, **kwargs)
            tell(1.0, "done")
        finally:
            bar.close()  # the summary starts on a line of its own
    except (FeatureError, ImageError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    for line in summary_lines(report, kwargs["switch"], root=p.root):
        click.echo(line)
