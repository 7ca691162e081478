"""The suggestion model of each project in this process: trained in a background thread after
decisions, or loaded from the project's saved model; what the screens read (`State`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .. import suggest as sg
from .outcomes import clear_cache

EXTERNAL = 2**62  # stamp of a model from another project
_STATES: dict = {}
_LOCK = threading.Lock()


@dataclass
class State:
    model: object
    preds: object
    stamp: int                      # last event id the model was trained after
    done: np.ndarray                # predictions decided since (in this process)
    trained_at: float = field(default_factory=time.time)
    seconds: float = 0.0
    targeted: int = -1              # a model from elsewhere: event id its targets were looked up at
    far_too: bool = False           # suggest objects far from every label too (`set_far_too`)


@dataclass
class _Slot:
    state: State | None = None
    thread: threading.Thread | None = None
    error: str | None = None
    requested: int = 0              # event id a retrain was asked for


def _slot(project) -> _Slot:
    with _LOCK:
        return _STATES.setdefault(str(project.root.resolve()), _Slot())


def _train_now(project, **params) -> State:
    t = time.time()
    model = sg.train(project, **params)
    preds = sg.predict(project, model)
    return State(model, preds, int(model.meta_["last_event"]), np.zeros(len(preds), bool),
                 seconds=time.time() - t)


def _load_saved(project) -> State | None:
    try:
        model = sg.load_model(project)
    except sg.SuggestError:
        return None
    preds = sg.predict(project, model)
    stamp = int(model.meta_.get("last_event", -1))
    if model.meta_.get("project") != str(project.root.resolve()):
        stamp = EXTERNAL  # trained elsewhere: retrain only when asked to
    return State(model, preds, stamp, np.zeros(len(preds), bool))


def _fresh(st: State | None, stamp: int) -> bool:
    return st is not None and (st.stamp == stamp or st.stamp == EXTERNAL)


def _stamp(project) -> int:
    with project.session() as s:
        return sg.last_event_id(s)


def _run(project, slot: _Slot, params: dict, force: bool) -> None:
    try:
        if slot.state is None and not force:
            slot.state = _load_saved(project)
        while True:
            want = slot.requested
            if not force and _fresh(slot.state, _stamp(project)):
                break
            slot.state, slot.error, force = _train_now(project, **params), None, False
            if slot.requested <= want:
                break
    except Exception as exc:  # shown on the screen; the previous predictions stay in use
        slot.error = str(exc)


def _refresh(project, wait: bool, force: bool, params: dict) -> State | None:
    slot = _slot(project)
    if wait:
        if slot.thread is not None:
            slot.thread.join()
        if slot.state is None and not force:
            slot.state = _load_saved(project)
        if force or not _fresh(slot.state, _stamp(project)):
            slot.state, slot.error = _train_now(project, **params), None
        return slot.state
    stamp = _stamp(project)
    if not force and _fresh(slot.state, stamp):
        return slot.state
    with _LOCK:
        slot.requested = max(slot.requested, stamp)
        if slot.thread is None or not slot.thread.is_alive():
            slot.thread = threading.Thread(target=_run, args=(project, slot, params, force),
                                           daemon=True, name="morphocluster-suggest")
            slot.thread.start()
    return slot.state


def forget(project) -> None:
    """Drop this process's model and predictions of the project (after a reset)."""
    slot = _slot(project)
    if slot.thread is not None:
        slot.thread.join()
    with _LOCK:
        _STATES.pop(str(project.root.resolve()), None)
    clear_cache(project)


def status(project) -> dict:
    """Return what the screen shows about the model: training?, error, age, size."""
    slot = _slot(project)
    st = slot.state
    return {"training": slot.thread is not None and slot.thread.is_alive(), "error": slot.error,
            "ready": st is not None, "saved": st is None and sg.model_path(project).is_file(),
            "external": st is not None and st.stamp == EXTERNAL,
            "n_train": st.model.meta_.get("n_train") if st else 0,
            "labels": len(st.model.classes_) if st else 0,
            "seconds": round(st.seconds, 1) if st else None}
