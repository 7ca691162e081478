"""Learn the feature network from the project's own images and sorting (`morphocluster learn`).

The whole EfficientNet-Lite0 (starting from ImageNet) is trained on every image of the project:
self-supervised (two random views of an image, `augment.random_views`, must map close together
and away from the other images: SimCLR's NT-Xent), and supervised on the labels the project has
(validated members of approved nodes, and imported validated labels unless `imported=False`),
with the suggestion model's confident suggestions as pseudo-labels at half weight. A share of
the labels is held out of the training; on it the new features and the active ones are
compared (`learn_check`), and the project switches to the new set only when it labels more
of them right.

Images are decoded once, at the training size, into a cache file. Training saves a checkpoint
every few minutes (and when cancelled) and resumes from it when run again with the same
settings. The features are written by `extract_features` (extractor `learned:WEIGHTS`, pooled
like the default set), so they append and resume like any other set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from .h5 import FeatureError, active_name, feature_path
from .learn_check import MIN_HELD
from .learn_data import cached_images, learn_labels, split_holdout

CHECKPOINT = "learn-run.pt"
STEPS = 5000  # default length: about 1 h at 64 px on 2 CPU cores (0.7 s, 1.5 CPU s, per step of
#               64 images in two views, measured on PlanktonSet-dev with nothing else running)


@dataclass
class LearnSettings:
    size: int = 64                   # training and feature input size in pixels
    epochs: int | None = None        # None: about STEPS steps, between 1 and 50 epochs
    batch_size: int = 64
    lr: float = 3e-4                 # of the network; the heads get 3x
    temperature: float = 0.2         # of NT-Xent
    supervised_weight: float = 1.0
    labelled_share: float = 0.5      # of each batch drawn from the labelled objects
    pseudo_confidence: float = 0.95  # suggestions this confident are pseudo-labels (1: none)
    holdout: float = 0.2             # share of each label's objects held out for the check
    invert: bool = False
    seed: int = 0

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def learn(project, settings: LearnSettings | None = None, name: str | None = None,
          device: str = "auto", num_workers: int | None = None, imported: bool = True,
          labels: dict | None = None, switch: bool = True, progress=None,
          checkpoint_every: int | None = None, max_steps: int | None = None) -> dict:
    """Train, write the new feature set, compare it with the active one; return the report.

    `labels` (Object.id -> label) replaces the labels read from the project. `switch`: make
    the new set active (and rebuild the index) when the held-out check finds it better.
    `checkpoint_every` steps (None: every 2 minutes); `max_steps` stops after that many steps
    of this call with the checkpoint saved (tests use it to stand for a kill).
    """
    from .base import torch_device

    st = settings or LearnSettings()
    tell = progress if callable(progress) else progress_bar()[1] if progress else (lambda f=None, m=None: None)
    t0, c0 = time.perf_counter(), time.process_time()
    dev = torch_device(device)
    old = _old_set(project)
    ck_path = project.features_dir / CHECKPOINT
    pks, ids, images = cached_images(project, st.size, st.invert, num_workers,
                                     lambda f, m: tell(0.05 * f, m))
    source = _label_source(imported, labels)
    run = _resume(ck_path, st, ids, source)
    if run is None:
        lab = learn_labels(project, imported) if labels is None else dict(labels)
        train_lab, held = split_holdout(lab, st.holdout, st.seed, min_held=MIN_HELD)
        pseudo = _pseudo(project, st, held=set(held), exclude=set(held) | set(train_lab))
        run = {"settings": st.key(), "ids": _digest(ids), "labels_from": source,
               "name": name or _new_name(project),
               "train": train_lab, "held": held, "pseudo": pseudo, "step": 0, "state": None,
               "seconds": 0.0, "cpu": 0.0}
    elif name and name != run["name"]:
        raise FeatureError(f"an unfinished learn run writes {run['name']!r}; run again without "
                           f"--name (or with --name {run['name']}) to resume it, or delete {ck_path}")
    if run["name"] == old:
        raise FeatureError(f"{run['name']!r} is the active feature set; learn writes a new one")
    t_decode = time.perf_counter() - t0
    from .learn_train import train

    resumed, before_s, before_c = run["step"], run["seconds"], run["cpu"]
    weights = train(project, run, images, pks, st, dev, ck_path, tell, checkpoint_every, max_steps)
    if weights is None:  # stopped by max_steps, checkpoint saved
        return {"name": run["name"], "stopped_at": run["step"], "resumed_from": resumed}
    t_train = time.perf_counter() - t0 - t_decode
    from .extract import extract_features

    spec = f"learned:{weights}" + ("+morphometric" if old and _combined(project, old) else "")
    extract_features(project, spec, name=run["name"], size=st.size, invert=st.invert,
                     device=device, num_workers=num_workers, activate=False,
                     progress=(lambda f, m: tell(0.9 + 0.08 * f, f"features: {m}")) if callable(progress)
                     else bool(progress))
    t_extract = time.perf_counter() - t0 - t_decode - t_train
    tell(0.98, "comparing the new features with the active ones on the held-out labels")
    from .learn_check import compare, switch_to

    check = compare(project, old, run["name"], run["train"], run["held"])
    switched = bool(switch and check["better"])
    if switched:
        switch_to(project, run["name"])
    report = {"name": run["name"], "weights": str(weights), "previous": old, "n_images": len(ids),
              "n_labels": len(run["train"]), "n_heldout": len(run["held"]),
              "n_classes": len(set(run["train"].values())), "n_pseudo": len(run["pseudo"]),
              "steps": run["steps"], "epochs": run["epochs"], "resumed_from": resumed,
              "check": check, "switched": switched, "size": st.size,
              "seconds": round(before_s + time.perf_counter() - t0, 1),
              "cpu_seconds": round(before_c + time.process_time() - c0, 1),
              "seconds_by_step": {"decode": round(t_decode, 1), "train": round(t_train, 1),
                                  "extract": round(t_extract, 1)}}
    (project.features_dir / f"{run['name']}.learn.json").write_text(json.dumps(report, indent=1))
    ck_path.unlink(missing_ok=True)
    return report


def progress_bar():
    """One terminal progress bar for a whole run (decoding, training, features): (bar, progress)."""
    from tqdm import tqdm

    bar = tqdm(total=1000, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def tell(fraction=None, message=None):
        if fraction is not None:
            bar.n = int(1000 * max(0.0, min(1.0, fraction)))
        if message is not None:
            bar.set_description_str(str(message)[:60], refresh=False)
        bar.refresh()

    return bar, tell


def _old_set(project) -> str | None:
    try:
        name = active_name(project)
    except FeatureError:
        return None
    return name if feature_path(project, name).is_file() else None


def _combined(project, name: str) -> bool:
    import h5py

    with h5py.File(feature_path(project, name), "r") as h:
        return str(h.attrs.get("extractor", "")).endswith("+morphometric")


def _new_name(project) -> str:
    k = 1
    while feature_path(project, f"learned-{k}").exists() or \
            (project.features_dir / f"learned-{k}.pt").exists():
        k += 1
    return f"learned-{k}"


def _digest(ids) -> str:
    h = hashlib.sha256()
    for i in ids:
        h.update(i.encode() + b"\0")
    return h.hexdigest()


def _label_source(imported: bool, labels: dict | None) -> str:
    """Where a run's labels come from: a run that read other labels is not resumed (one that
    trained on imported labels must not go on as one of the sorting's alone)."""
    if labels is None:
        return "sorting+imported" if imported else "sorting"
    return "given:" + hashlib.sha256(json.dumps(sorted((int(k), str(v)) for k, v in labels.items()))
                                     .encode()).hexdigest()


def _resume(path, st: LearnSettings, ids, source: str) -> dict | None:
    """The unfinished run in `path` when it has these settings, objects and labels' source, else None."""
    import torch

    if not path.is_file():
        return None
    try:
        run = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - a torn or foreign file: start again
        return None
    if not isinstance(run, dict) or run.get("settings") != st.key() or run.get("ids") != _digest(ids) \
            or run.get("labels_from") != source:
        return None
    return run


def _pseudo(project, st: LearnSettings, held: set, exclude: set) -> dict:
    """Object.id -> label of the suggestions at least `pseudo_confidence` sure (not unknown), from
    a model that has not seen the held-out labels (else they would leak into the check)."""
    if st.pseudo_confidence >= 1:
        return {}
    from .. import suggest as sg

    try:
        model = sg.train(project, save=False, exclude=held)
        preds = sg.predict(project, model)
    except (sg.SuggestError, FeatureError):
        return {}
    ok = (preds.confidence >= st.pseudo_confidence) & ~preds.unknown
    return {int(pk): str(lab) for pk, lab in zip(preds.pks[ok], preds.label[ok]) if int(pk) not in exclude}


def default_epochs(n: int, batch_size: int) -> int:
    return int(np.clip(round(STEPS / max(1, math.ceil(n / batch_size))), 1, 50))


def save_checkpoint(path, run: dict) -> None:
    import torch

    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    torch.save(run, tmp)
    os.replace(tmp, path)
