"""`morphocluster features`, `morphocluster train` and `morphocluster index`."""

from __future__ import annotations

import click

from . import open_project

DEVICE = click.Choice(["auto", "cpu", "cuda"])


@click.command("features")
@click.argument("project", type=click.Path(file_okay=False))
@click.option("--extractor", default="efficientnet-lite0+morphometric", show_default=True,
              help="efficientnet-lite0 (ImageNet; head and block 11 pooled), efficientnet-lite0-head "
                   "(the head alone), morphometric, pixels, torchscript:PATH, state-dict:PATH, "
                   "any of the CNNs + '+morphometric' (size, shape, grey levels appended), "
                   "or external:FILE (.h5 with object_id/features, or CSV/TSV with an id column).")
@click.option("--name", default=None, help="Name of the feature set (default: from the extractor).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--workers", type=click.IntRange(0), default=None, help="Image decoding processes.")
@click.option("--size", type=click.IntRange(8), default=None, help="Input size in pixels.")
@click.option("--invert", is_flag=True, help="Invert grey levels before padding (for the other polarity).")
@click.option("--rotations", type=click.Choice(["1", "2", "4", "8"]), default="1", show_default=True,
              help="Average CNN features over this many turned (8: and mirrored) copies of each "
                   "image: better for organisms in any orientation, that many times slower.")
@click.option("--store", type=click.Choice(["float32", "float16", "none"]), default=None,
              help="How a new set keeps its full features on disk (default float32; float16: "
                   "half the size, the interactive parts use a float16 PCA anyway; none: not "
                   "at all, only the working matrix: the HDF5 export, `index --refit`, models "
                   "from other projects and `train` on a +morphometric set then need the set "
                   "computed again). An existing set keeps its own.")
@click.option("--no-activate", is_flag=True, help="Keep the current active feature set.")
@click.option("--list", "list_", is_flag=True, help="List the feature sets and exit.")
@click.option("--activate", "activate_name", default=None, help="Make this existing feature set active and exit.")
def features(project, extractor, name, batch_size, device, workers, size, invert, rotations,
             store, no_activate, list_, activate_name):
    """Compute the feature vector of every object of PROJECT into a named feature set.

    An interrupted run continues where it stopped when run again with the same options. Run
    again on a complete set with the same options, it computes only the objects imported since
    and appends them (the rows already there do not change); to compute everything afresh,
    choose another --name. At the end the set's working matrix (a PCA of it, which index,
    clustering, growth and suggestions use) is brought up to date. With --store none a random
    50,000 of the objects (all, when fewer) are computed first and fitted on, then every other
    object goes straight into the working matrix: only that sample is ever on disk in full.
    """
    from ..features import FeatureError, list_feature_sets, set_active
    from ..features.extract import extract_features
    from ..features.preprocess import ImageError

    p = open_project(project)
    try:
        if list_:
            for fs in list_feature_sets(p):
                kept = "not kept" if fs["store"] == "none" else fs["store"]
                click.echo(f"{'*' if fs['active'] else ' '} {fs['name']:30s} {fs['n']:>9d} x {fs['dim']:<5d} "
                           f"{kept:9s} {fs['extractor']}")
            return
        if activate_name:
            set_active(p, activate_name)
            click.echo(f"Active feature set: {activate_name}")
            return
        done = extract_features(p, extractor, name=name, batch_size=batch_size, device=device,
                                num_workers=workers, size=size, invert=invert, activate=not no_activate,
                                rotations=int(rotations), store=store)
    except (FeatureError, ImageError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Wrote feature set {done}" + ("" if no_activate else " (active)"))


@click.command("train")
@click.argument("project", type=click.Path(file_okay=False))
@click.option("--name", default="trained", show_default=True, help="Name of the new feature set.")
@click.option("--epochs", default=None, type=click.IntRange(1), help="Training epochs (default: by size).")
@click.option("--size", default=None, type=click.IntRange(32), help="Input size in pixels.")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(8))
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--workers", type=click.IntRange(0), default=None, help="Image decoding processes.")
@click.option("--invert", is_flag=True, help="Invert grey levels before padding.")
@click.option("--no-labels", is_flag=True, help="Self-supervised only, even when validated labels exist.")
@click.option("--train-blocks", default=2, show_default=True, type=click.IntRange(1, 16),
              help="How many of the last EfficientNet blocks to train (the rest stay frozen).")
@click.option("--views", default=2, show_default=True, type=click.IntRange(1),
              help="Augmented views per image computed through the frozen blocks.")
def train(project, name, epochs, size, batch_size, device, workers, invert, no_labels, train_blocks, views):
    """Fine-tune the feature extractor on PROJECT's images, re-extract and activate the result.

    Self-supervised (two augmented views must agree), plus supervised on validated labels
    (imported labels with status validated, validated members of approved nodes) when any exist.
    The new set is the tuned network's pooled head output (as `--extractor state-dict:PATH`
    gives), with the active set's morphometric block appended when it has one.
    """
    from ..features import FeatureError
    from ..features.train import train_extractor

    p = open_project(project)
    try:
        report = train_extractor(p, name=name, epochs=epochs, size=size, batch_size=batch_size, device=device,
                                 num_workers=workers, invert=invert, use_labels=not no_labels,
                                 train_blocks=train_blocks, views=views)
    except (FeatureError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Trained on {report['n_images']} images ({report['n_labelled']} labelled, "
               f"{report['n_classes']} classes) in {report['seconds']:.0f} s; "
               f"wrote feature set {report['name']} (active), weights {report['weights']}")


@click.command("index")
@click.argument("project", type=click.Path(file_okay=False))
@click.option("--pca", type=click.IntRange(1), default=None,
              help="Reduce the working matrix further to N dimensions by PCA first.")
@click.option("--kind", type=click.Choice(["auto", "flat", "ivf", "ivfflat", "hnsw"]), default="auto",
              show_default=True, help="auto: exact up to 200,000 objects, ivf above (8-bit "
                                      "vectors, top hits re-ranked exactly); ivfflat keeps "
                                      "float32 vectors (4x the memory).")
@click.option("--nlist", type=click.IntRange(1), default=None, help="IVF lists (default sqrt(n)).")
@click.option("--refit", is_flag=True, help="Fit the working matrix's PCA anew on a sample of the "
                                            "features, then project every object again (not for "
                                            "a set made with --store none: it keeps no features "
                                            "to fit on).")
@click.option("--working-dim", type=click.IntRange(2, 1024), default=None,
              help="Components of the working matrix (default 128; saved in the project; "
                   "implies --refit).")
def index(project, pca, kind, nlist, refit, working_dim):
    """Build the nearest-neighbour index over PROJECT's active feature set.

    The index, and everything interactive, works on the set's working matrix: a PCA of the
    features in float16 (128 components; a set of at most 128 features is used as it is),
    made once and brought up to date here when objects were added.
    """
    from ..features import FeatureError
    from ..features.h5 import active_name
    from ..features.working import build_working
    from ..index import build_index

    p = open_project(project)
    try:
        w = build_working(p, active_name(p), dim=working_dim, refit=refit or bool(working_dim),
                          progress=lambda f, m: None)
        if working_dim:  # saved once the matrix is made with it (a refused refit saves nothing)
            p.config["working"] = {**(p.config.get("working") or {}), "dim": int(working_dim)}
            p.save_config()
        meta = build_index(p, pca=pca, kind=kind, nlist=nlist)
    except (FeatureError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    how = f"PCA {w['dim_in']} -> {w['dim']}, {w['dtype']}" if w["pca"] else f"{w['dim']} features as they are"
    extra = f", then PCA {meta['dim_in']} -> {meta['dim']}" if meta["pca"] else ""
    click.echo(f"Working matrix of {w['n']:,} objects ({how}); built {meta['kind']} index of "
               f"{meta['n']:,} x {meta['dim']} ({meta['features']}{extra}) in "
               f"{meta['build_seconds']:.1f} s")
