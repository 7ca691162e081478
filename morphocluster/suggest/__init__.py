"""Suggest labels for the objects not labelled yet, from the objects labelled so far (issue #7).

`train(project)` fits a `SuggestionModel` on the members of approved nodes and saves it in the
project's cache folder; `predict(project)` returns `Predictions` for every object outside an
approved node: a label, the node it would go to, a calibrated confidence and an "unknown" flag
for objects far from every known label (those go back to clustering). See docs/suggest.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from ..store import Event
from .data import LabelSet, label_set, rejected_labels
from .model import MODEL_NAME, SuggestionModel, fit_projection

__all__ = ["LabelSet", "Predictions", "SuggestionModel", "SuggestError", "label_set", "load_model",
           "model_path", "predict", "train"]

N_COMPONENTS = 128
_PROJECTIONS: dict = {}


def projection(fm, n_components: int = N_COMPONENTS):
    """Return (mean, components): the model's PCA of the working rows, fitted on a fixed sample of
    all objects (so it does not change with the labels), cached per feature matrix."""
    key = (fm.name, id(fm), n_components)
    hit = _PROJECTIONS.get(key)
    if hit is None:
        rng = np.random.default_rng(0)
        hit = fit_projection(fm.X[np.sort(rng.choice(len(fm.X), min(len(fm.X), 10000),
                                                     replace=False))], n_components)
    _PROJECTIONS.clear()
    _PROJECTIONS[key] = hit
    return hit


class _Take:
    """Rows of a matrix read a slice at a time (what `SuggestionModel.suggest` asks for)."""

    def __init__(self, get, rows):
        self.get, self.rows = get, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, sl):
        return self.get(self.rows[sl])


def _work_fit(model):
    """The working-matrix fit a model was trained behind, or None (trained on the features)."""
    c = getattr(model, "work_components_", None)
    return None if c is None or c.size == 0 else (model.work_mean_, c)


def _same_fit(model, fm) -> bool:
    """Whether the model takes this project's working rows as they are."""
    mine, theirs = fm.fit, _work_fit(model)
    return (mine is None and theirs is None) or (mine is not None and theirs is not None and all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(mine, theirs)))


def _rows_for(model, fm, rows):
    """The rows as the model takes them: working rows when the model was trained on this
    project's working matrix, else the full features (through the model's own working fit)."""
    theirs = _work_fit(model)
    if _same_fit(model, fm):
        return _Take(fm.X.__getitem__, rows)
    if theirs is None:
        return _Take(fm.full_rows, rows)
    return _Take(lambda r: (fm.full_rows(r) - theirs[0]) @ theirs[1], rows)


class SuggestError(RuntimeError):
    """No model, too few labels, or a model that does not fit the project's features."""


@dataclass
class Predictions:
    pks: np.ndarray          # int64 Object.id
    label: np.ndarray        # suggested label (str)
    node_id: np.ndarray      # int64 approved node of that label in this project, -1 if none
    confidence: np.ndarray   # calibrated probability of the label
    unknown: np.ndarray      # bool: far from every labelled object of that label
    ratio: np.ndarray        # distance to the label's nearest reference / its typical distance
    display: dict            # label -> short name
    runner_up: np.ndarray | None = None  # second most probable label (str), None if none
    dead: np.ndarray | None = None       # bool: every label was rejected for it (also `unknown`)

    def __post_init__(self):
        if self.dead is None:
            self.dead = np.zeros(len(self.pks), bool)

    def __len__(self) -> int:
        return len(self.pks)

    def subset(self, mask) -> "Predictions":
        second = self.runner_up[mask] if self.runner_up is not None else None
        return Predictions(self.pks[mask], self.label[mask], self.node_id[mask],
                           self.confidence[mask], self.unknown[mask], self.ratio[mask], self.display,
                           second, self.dead[mask])


def model_path(project) -> Path:
    return project.cache_dir / MODEL_NAME


def last_event_id(session) -> int:
    return int(session.scalar(select(func.max(Event.id))) or 0)


def train(project, include_predicted: bool = True, save: bool = True, exclude=None,
          **params) -> SuggestionModel:
    """Fit a suggestion model on the members of approved nodes; save it in the cache folder.

    Validated members count fully and are the only ones held out to calibrate; predicted
    members train with half weight (`include_predicted=False`: not at all). Objects in `exclude`
    (Object.ids, such as those a check holds out) are left out.
    """
    from ..features.matrix import load_matrix

    with project.session() as s:
        ls = label_set(s)
        stamp = last_event_id(s)
    fm = load_matrix(project)
    rows = fm.rows_of(ls.pks)
    w = ls.weights(include_predicted)
    keep = (rows >= 0) & (w > 0)
    if exclude:
        keep &= ~np.isin(ls.pks, np.fromiter(exclude, np.int64, len(exclude)))
    if len(set(ls.labels[keep])) < 2:
        raise SuggestError(f"{project.root}: suggestions need labelled objects of at least 2 labels "
                           f"(approve and name some clusters first); found {len(set(ls.labels[keep]))}")
    params.setdefault("n_components", N_COMPONENTS)
    mean, comps = projection(fm, params["n_components"])
    model = SuggestionModel(**params).fit(fm.X[rows[keep]], ls.labels[keep].astype(str),
                                          sample_weight=w[keep], projection=(mean, comps))
    model.work_mean_, model.work_components_ = fm.fit or (np.zeros(0, np.float32),
                                                          np.zeros((0, 0), np.float32))
    model.meta_ = {"feature_set": fm.name, "features": feature_signature(project, fm.name),
                   "n_train": int(keep.sum()),
                   "n_validated": int((ls.status[keep] == "validated").sum()),
                   "last_event": stamp, "project": str(project.root.resolve()),
                   "display": {k: ls.display[k] for k in model.classes_}}
    if save:
        project.cache_dir.mkdir(parents=True, exist_ok=True)
        model.save(model_path(project))
    return model


SIGNATURE = ("extractor", "extractor_params", "preprocessing")


def feature_signature(project, name: str) -> dict:
    """What made a feature set (extractor, its parameters, preprocessing), as its file says."""
    import h5py

    from ..features.h5 import feature_path

    try:
        with h5py.File(feature_path(project, name), "r") as h:
            return {k: str(h.attrs[k]) for k in SIGNATURE if k in h.attrs}
    except OSError:
        return {}


def check_model(project, model: SuggestionModel) -> None:
    """Raise SuggestError unless the model was trained on features like the active set: as many
    columns, made by the same extractor with the same settings (where the model records them)."""
    from ..features.matrix import load_matrix

    fm = load_matrix(project)
    meta = getattr(model, "meta_", {}) or {}
    theirs = meta.get("feature_set", "?")
    hint = (f"compute matching features here (`morphocluster features {project.root} --extractor "
            "...`, with the same options) or train a model here")
    fit = _work_fit(model)
    width = fit[1].shape[0] if fit is not None else model.n_features_in_
    if fm.dim_in != width:
        raise SuggestError(f"the model was trained on {theirs!r} features ({width} "
                           f"per object); the active feature set here, {fm.name!r}, has "
                           f"{fm.dim_in}: {hint}")
    mine = feature_signature(project, fm.name)
    differ = [k for k in SIGNATURE if k in mine and k in (meta.get("features") or {})
              and mine[k] != meta["features"][k]]
    if differ:
        k = differ[0]
        raise SuggestError(f"the model was trained on features made with other settings: its {k} "
                           f"is {meta['features'][k]}, here {mine[k]}: {hint}")
    if not fm.full_kept and not _same_fit(model, fm):
        from ..features.h5 import not_kept_message

        raise SuggestError(not_kept_message(fm.name, f"a model trained on {theirs!r} in another "
                                                     "project (it maps the full features its "
                                                     "own way)") + ", or train a model here")


def load_model(project, path=None) -> SuggestionModel:
    """Load the project's saved model (or the one at `path`)."""
    path = Path(path) if path else model_path(project)
    if not path.is_file():
        raise SuggestError(f"{path}: no suggestion model; train one with `morphocluster suggest "
                           f"{project.root} --train`")
    try:
        return SuggestionModel.load(path)
    except ValueError as exc:
        raise SuggestError(str(exc)) from exc


def predict(project, model: SuggestionModel | None = None) -> Predictions:
    """Suggest a label for every object with features that is not in an approved node.

    Labels an object was rejected for are never suggested for it.
    """
    from ..features.matrix import load_matrix

    model = model or load_model(project)
    check_model(project, model)
    fm = load_matrix(project)
    with project.session() as s:
        ls = label_set(s)
        rejected = rejected_labels(s, ls.label_of_node)
    free = ~np.isin(fm.pks, ls.pks)
    rows = np.flatnonzero(free)
    index = {c: i for i, c in enumerate(model.classes_)}
    forbidden = {}
    if rejected:
        pos = {int(pk): i for i, pk in enumerate(fm.pks[rows])}
        for pk, labs in rejected.items():
            i = pos.get(int(pk))
            bad = [index[lab] for lab in labs if lab in index]
            if i is not None and bad:
                forbidden[i] = bad
    # read a chunk at a time: no copy of all free objects' features
    cls, conf, ratio, second = model.suggest(_rows_for(model, fm, rows), forbidden,
                                             runner_up=True)
    labels = model.classes_[cls].astype(object)
    runner = model.classes_[np.maximum(second, 0)].astype(object)
    runner[second < 0] = None
    nodes = np.array([ls.target.get(lab, -1) for lab in model.classes_], np.int64)[cls]
    display = dict((getattr(model, "meta_", {}) or {}).get("display", {}))
    display.update(ls.display)
    # all labels forbidden for an object: nothing left to suggest
    dead = np.array([len(forbidden.get(i, ())) >= len(model.classes_) for i in range(len(rows))]) \
        if forbidden else np.zeros(len(rows), bool)
    unknown = (ratio > model.unknown_factor) | dead
    return Predictions(fm.pks[rows], labels, nodes, conf, unknown, ratio, display, runner, dead)
