"""Is a learnt feature set better than the active one? The held-out check of `learn`, and the switch."""

from __future__ import annotations

import numpy as np

MIN_HELD = 20  # fewer held-out labels than this: no check, no switch


def probe_accuracy(project, name: str, train: dict, held: dict) -> float:
    """Share of the held-out objects whose label the suggestion model, fitted on `train` with
    the set's working matrix, gets right."""
    from .matrix import load_matrix
    from ..suggest import SuggestionModel

    fm = load_matrix(project, name)

    def rows(d):
        pks = np.fromiter(d, np.int64, len(d))
        r = fm.rows_of(pks)
        return r[r >= 0], np.array([d[int(p)] for p in pks[r >= 0]], dtype=object)

    rt, yt = rows(train)
    rh, yh = rows(held)
    order = np.argsort(rt)
    model = SuggestionModel().fit(np.asarray(fm.X[rt[order]], np.float32), yt[order].astype(str))
    cls, _, _ = model.suggest(np.asarray(fm.X[rh], np.float32))
    return float(np.mean(model.classes_[cls] == yh.astype(str)))


def compare(project, old: str | None, new: str, train: dict, held: dict) -> dict:
    """Both sets' held-out accuracy and whether the new one is better (by at least one object)."""
    out = {"old_set": old, "new_set": new, "n_train": len(train), "n_heldout": len(held),
           "old": None, "new": None, "better": False}
    if len(held) < MIN_HELD or len(set(train.values())) < 2:
        out["reason"] = (f"{len(held)} held-out labels of {len(set(train.values()))} classes: too few "
                         f"to compare (at least {MIN_HELD} of 2 classes); the active set stays")
        return out
    out["new"] = probe_accuracy(project, new, train, held)
    if old is None:
        out["better"], out["reason"] = True, "no active feature set to compare with"
        return out
    out["old"] = probe_accuracy(project, old, train, held)
    out["better"] = (out["new"] - out["old"]) * len(held) >= 1 - 1e-9
    out["reason"] = (f"held-out accuracy {out['new']:.1%} with {new} against {out['old']:.1%} with "
                     f"{old}: " + (f"{new} is better" if out["better"] else f"{new} is not better, {old} stays active"))
    return out


def switch_to(project, name: str) -> None:
    """Make `name` the active set: index it, retrain the suggestion model on it."""
    from .h5 import set_active
    from .. import suggest as sg
    from ..index import build_index
    from ..workflow.suggest import forget

    set_active(project, name)
    build_index(project)
    forget(project)
    try:
        sg.train(project)
    except sg.SuggestError:
        sg.model_path(project).unlink(missing_ok=True)  # too few labels: no stale model either
