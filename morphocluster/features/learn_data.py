"""What `learn` trains on: the decoded images (cached) and the labels the project has."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from sqlalchemy import select

from .h5 import FeatureError
from .preprocess import ImageError, Preprocess
from ..store import Object


class _Decode:
    def __init__(self, pre, paths, ids, start):
        self.pre, self.paths, self.ids, self.start = pre, paths, ids, start

    def __len__(self):
        return len(self.paths) - self.start

    def __getitem__(self, i):
        i += self.start
        try:
            return i, np.array(self.pre(self.paths[i]))  # writable: the DataLoader makes a tensor of it
        except (ImageError, OSError, ValueError) as exc:
            return i, f"object {self.ids[i]!r} ({self.paths[i]}): {exc}"


def cached_images(project, size: int, invert: bool, num_workers, tell):
    """Return (Object.ids, object_ids, uint8 (n, size, size) memmap) of every object's image,
    decoded and preprocessed once into the cache folder (resumed where a run stopped; made
    again when the objects changed)."""
    from torch.utils.data import DataLoader
    from .extract import default_workers, die_with_parent

    with project.session() as s:
        rows = s.execute(select(Object.id, Object.object_id, Object.path).order_by(Object.id)).all()
    if not rows:
        raise FeatureError(f"{project.root}: no objects; import images first")
    pks = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    ids = [r[1] for r in rows]
    paths = [str(project.image_path(r[2])) for r in rows]
    folder = project.cache_dir / "learn"
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"images-{size}{'-inverted' if invert else ''}"
    data, meta_path = stem.with_suffix(".u8"), stem.with_suffix(".json")
    digest = hashlib.sha256("\0".join(ids).encode()).hexdigest()
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    n = len(ids)
    if meta.get("ids") != digest or not data.is_file():
        meta = {"ids": digest, "n": n, "size": size, "done": 0}
        np.memmap(data, np.uint8, "w+", shape=(n, size, size)).flush()
        meta_path.write_text(json.dumps(meta))
    mm = np.memmap(data, np.uint8, "r+", shape=(n, size, size))
    done = int(meta["done"])
    if done < n:
        workers = default_workers() if num_workers is None else num_workers
        loader = DataLoader(_Decode(Preprocess(size=size, invert=invert), paths, ids, done),
                            batch_size=None, num_workers=workers, worker_init_fn=die_with_parent,
                            prefetch_factor=64 if workers else None)
        for i, a in loader:
            if isinstance(a, str):
                mm.flush()
                meta_path.write_text(json.dumps({**meta, "done": done}))
                raise FeatureError(a)
            mm[i] = a
            done = i + 1
            if done % 2048 == 0 or done == n:
                mm.flush()
                meta_path.write_text(json.dumps({**meta, "done": done}))
                tell(done / n, f"decoded {done} of {n} images")
    return pks, ids, np.memmap(data, np.uint8, "r", shape=(n, size, size))


def learn_labels(project, imported: bool = True) -> dict[int, str]:
    """Object.id -> label: validated members of approved nodes (the label the suggestions use),
    and, with `imported`, imported labels whose status is validated (sorting wins)."""
    from ..suggest import label_set

    with project.session() as s:
        ls = label_set(s)
        out = {}
        if imported:
            out = {int(pk): str(lab) for pk, lab in s.execute(
                select(Object.id, Object.imported_label).where(
                    Object.imported_status == "validated", Object.imported_label.is_not(None)))}
    ok = ls.status == "validated"
    out.update({int(pk): str(lab) for pk, lab in zip(ls.pks[ok], ls.labels[ok])})
    return out


def split_holdout(labels: dict, share: float, seed: int, min_held: int = 0) -> tuple[dict, dict]:
    """Split labels into (train, held out): `share` of each label's objects, rounded down, held
    out (so a label with fewer than 1/share objects keeps them all for training). Where that
    holds out fewer than `min_held`, the share grows (up to a half) until it does not."""
    by: dict[str, list] = {}
    for pk in sorted(labels):
        by.setdefault(labels[pk], []).append(pk)
    for s in [share] + [x for x in (0.25, 0.3, 0.35, 0.4, 0.45, 0.5) if x > share]:
        if sum(int(s * len(v)) for v in by.values()) >= min_held:
            share = s
            break
    else:
        share = max(share, 0.5)
    rng = np.random.default_rng(seed)
    train, held = {}, {}
    for lab in sorted(by):
        pks = rng.permutation(by[lab])
        k = int(share * len(pks))
        held.update({int(p): lab for p in pks[:k]})
        train.update({int(p): lab for p in pks[k:]})
    return train, held
