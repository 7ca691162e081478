"""`morphocluster suggest`: train the suggestion model, predict, accept confident suggestions."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import click

from . import open_project


def _user_id(project, username):
    if not username:
        return None
    from ..users import list_users

    for u in list_users(project):
        if u["username"] == username:
            return u["id"]
    raise click.ClickException(f"{project.root}: no user named {username!r}")


@click.command("suggest")
@click.argument("project_path", metavar="PROJECT", type=click.Path(file_okay=False))
@click.option("--train", "do_train", is_flag=True, help="Train the model on the labelled objects.")
@click.option("--predict", "do_predict", is_flag=True,
              help="Suggest labels for the unlabelled objects and print a summary per label.")
@click.option("--accept-above", type=click.FloatRange(0, 1), default=None, metavar="P",
              help="Accept the suggestions of --label with confidence >= P (status 'predicted').")
@click.option("--label", default=None, help="The label (node name or path a>b) for --accept-above.")
@click.option("--model", "model_file", type=click.Path(dir_okay=False), default=None,
              help="With --train: also save the model here. Without: use this saved model "
                   "(e.g. from another project with the same features).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the predictions as CSV (object_id, label, node_id, confidence, unknown).")
@click.option("--user", "username", default=None,
              help="User the decisions are logged for (that user can undo them in the web UI).")
@click.option("--validated-only", is_flag=True, help="Train on validated objects only.")
@click.option("--far-too/--no-far-too", "far", default=None,
              help="Have the objects far from every label ('unknown') suggested too, for "
                   "--accept-above and the web screens (a project setting), or leave them for "
                   "the next clustering round again (the default).")
def suggest(project_path, do_train, do_predict, accept_above, label, model_file, out, username,
            validated_only, far):
    """Train the suggestion model and predict labels for unlabelled objects."""
    from .. import suggest as sg
    from ..features import FeatureError
    from ..suggest.data import label_targets
    from ..workflow import WorkflowError
    from ..workflow import suggest as wf

    if accept_above is not None and not label:
        raise click.UsageError("--accept-above needs --label NAME")
    project = open_project(project_path)
    try:
        uid = _user_id(project, username)
        if far is not None:
            wf.set_far_too(project, far)
            click.echo("objects far from every label: " + ("suggested too" if far else
                                                            "left for the next clustering round"))
        if do_train:
            model = sg.train(project, include_predicted=not validated_only)
            m = model.meta_
            click.echo(f"trained on {m['n_train']} objects ({m['n_validated']} validated) of "
                       f"{len(model.classes_)} labels; temperature {model.temperature_:.2f}")
            if model_file:
                shutil.copyfile(sg.model_path(project), model_file)
                click.echo(f"wrote {model_file}")
        elif model_file:
            model = sg.load_model(project, model_file)
            sg.check_model(project, model)  # before anything here changes
            project.cache_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model_file, sg.model_path(project))
            with project.session() as s:
                had = set(label_targets(s)[1].values())
            nodes = wf.adopt_labels(project, uid, [str(c) for c in model.classes_])
            made = len(set(nodes.values()) - had)
            click.echo(f"using {model_file}: {len(model.classes_)} labels; created a node for "
                       f"{made} of them that had none here" + (
                           "" if uid is not None or not made else
                           " (to be able to undo that in the web UI, give --user NAME)"))
        else:
            model = sg.load_model(project) if sg.model_path(project).is_file() else sg.train(
                project, include_predicted=not validated_only)
        if do_predict or out or not (do_train or accept_above is not None):
            preds = sg.predict(project, model)
            _summary(preds, wf.far_too(project))
            if out:
                _write_csv(project, preds, Path(out))
                click.echo(f"wrote {out}")
        if accept_above is not None:
            _accept(project, uid, model, label, accept_above)
    except (sg.SuggestError, FeatureError, WorkflowError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        project.close()


def _summary(preds, far_too: bool = False) -> None:
    from ..workflow.suggest import suggested

    known = suggested(preds, far_too)  # with the switch on, far ones are suggested too
    far = int((preds.unknown & ~preds.dead).sum())
    click.echo(f"{len(preds)} unlabelled objects: {int(known.sum())} suggested, "
               + (f"{far} of them far from every label (suggested too: --far-too)" if far_too else
                  f"{int(preds.unknown.sum())} unknown (far from every label; cluster them)"))
    by = Counter(preds.label[known])
    hi = Counter(preds.label[known & (preds.confidence >= 0.9)])
    click.echo(f"{'label':40s} {'suggested':>10s} {'conf>=0.9':>10s}")
    for lab, n in by.most_common():
        click.echo(f"{preds.display.get(lab, lab)[:40]:40s} {n:10d} {hi.get(lab, 0):10d}")


def _write_csv(project, preds, path: Path) -> None:
    from sqlalchemy import select

    from ..store import Object

    with project.session() as s:
        ids = dict(s.execute(select(Object.id, Object.object_id)).all())
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["object_id", "label", "node_id", "confidence", "unknown"])
        for i in range(len(preds)):
            w.writerow([ids.get(int(preds.pks[i])), preds.label[i], int(preds.node_id[i]),
                        f"{preds.confidence[i]:.4f}", int(preds.unknown[i])])


def _accept(project, uid, model, label, threshold) -> None:
    from ..workflow import suggest as wf

    try:
        label = model.resolve_label(label)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    node_id = wf.adopt_labels(project, uid, [label])[label]
    state = wf.refresh(project, wait=True)
    prev = wf.accept_preview(project, node_id, threshold, state=state)
    n = wf.accept_above(project, uid, node_id, threshold, state=state)
    est = f"{prev['precision']:.1%}" if prev["precision"] is not None else "unknown"
    click.echo(f"accepted {n} objects as {label!r} (node {node_id}) with confidence >= "
               f"{threshold:g}; estimated precision {est} (from {prev['n_heldout']} held-out objects)")
