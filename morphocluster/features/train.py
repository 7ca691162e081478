"""Fine-tune EfficientNet-Lite0 on the project's own images, then re-extract its features.

To run on a CPU in minutes, the first blocks stay frozen: their output ("trunk maps") is
computed once per cached view (view 0 plain, further views with random flips, 90-degree
rotations, small affine and brightness/contrast changes) and only the last `train_blocks`
blocks plus the head convolution are trained, on dihedral transforms of those maps. The loss
is SimCLR's NT-Xent between two views of each image, plus cross-entropy on validated labels
when any exist. The new features are then the trained network's pooled output on view 0,
identical to running `state-dict:<weights>` on the images.
"""

from __future__ import annotations

import math
import time

import numpy as np
from sqlalchemy import select

from .effnet import DEFAULT_SIZE, build_model, to_input
from .extract import _collate, default_workers, die_with_parent, project_objects
from .h5 import FeatureError, feature_path, set_active, write_features
from .learn_train import nt_xent
from .preprocess import Preprocess, background_level
from ..store import Membership, Node, Object


class Augment:
    """Preprocess then randomly flip, rotate by 90 degrees, slightly rotate/scale/shift, and
    change brightness and contrast (picklable, runs in DataLoader workers)."""

    def __init__(self, pre: Preprocess, seed: int):
        self.pre, self.seed = pre, seed

    def __call__(self, i, path):
        from PIL import Image

        a = self.pre(path)
        if self.seed < 0:
            return a
        rng = np.random.default_rng((self.seed, i))
        bg = background_level(a)
        a = np.rot90(a, rng.integers(4))
        if rng.random() < 0.5:
            a = a[:, ::-1]
        s = a.shape[0]
        im = Image.fromarray(np.ascontiguousarray(a))
        im = im.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR, fillcolor=bg)
        scale = rng.uniform(0.9, 1.1)
        dx, dy = rng.uniform(-0.05, 0.05, 2) * s
        c = s / 2
        im = im.transform((s, s), Image.AFFINE, (1 / scale, 0, c - c / scale + dx, 0, 1 / scale, c - c / scale + dy),
                          resample=Image.BILINEAR, fillcolor=bg)
        x = np.asarray(im, dtype=np.float32)
        x = (x - bg) * rng.uniform(0.85, 1.15) + bg + rng.uniform(-15, 15)
        return np.clip(x, 0, 255).astype(np.uint8)


class _Views:
    def __init__(self, aug, paths):
        self.aug, self.paths = aug, paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return i, self.aug(i, self.paths[i])


def split_model(model, train_blocks: int):
    """Return (trunk function, tail module) of EfficientNet-Lite0 cut before the last blocks."""
    import torch

    cut = len(model._blocks) - train_blocks
    if not 0 <= cut < len(model._blocks):
        raise ValueError(f"train_blocks must be between 1 and {len(model._blocks)}")

    def trunk(x):
        x = model._swish(model._bn0(model._conv_stem(x)))
        for b in model._blocks[:cut]:
            x = b(x)
        return x

    class Tail(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList(model._blocks[cut:])
            self.conv_head, self.bn1, self.act = model._conv_head, model._bn1, model._swish

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return self.act(self.bn1(self.conv_head(x))).mean((2, 3))

    return trunk, Tail()


def trunk_maps(model, train_blocks, paths, pre, views, device, batch_size, num_workers, progress,
               seed=0) -> np.ndarray:
    """Return float16 (views, n, C, H, W) outputs of the frozen trunk (view 0 unaugmented)."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    trunk, _ = split_model(model, train_blocks)
    out = None
    model.eval()
    bar = tqdm(total=views * len(paths), unit="img", desc="trunk", disable=not progress)
    for v in range(views):
        loader = DataLoader(_Views(Augment(pre, -1 if v == 0 else seed * 1000 + v), paths),
                            batch_size=batch_size, num_workers=num_workers, collate_fn=_collate,
                            worker_init_fn=die_with_parent)
        with torch.inference_mode():
            for rows, batch in loader:
                h = trunk(to_input(batch, device)).half().cpu().numpy()
                if out is None:
                    out = np.empty((views, len(paths)) + h.shape[1:], dtype=np.float16)
                out[v, rows[0]:rows[-1] + 1] = h
                bar.update(len(rows))
    bar.close()
    return out


def validated_labels(project) -> dict[str, str]:
    """Return object_id -> label of imported validated labels and validated members of approved nodes."""
    with project.session() as s:
        out = dict(s.execute(select(Object.object_id, Object.imported_label).where(
            Object.imported_status == "validated", Object.imported_label.is_not(None))).all())
        rows = s.execute(select(Object.object_id, Node.id, Node.name).join(Membership, Membership.object_pk == Object.id)
                         .join(Node, Node.id == Membership.node_id)
                         .where(Node.status == "approved", Membership.status == "validated")).all()
    for oid, nid, name in rows:
        out[oid] = name or f"node-{nid}"
    return out


def _dihedral(x, code):
    import torch

    x = torch.rot90(x, int(code) % 4, dims=(2, 3))
    return torch.flip(x, dims=(3,)) if code >= 4 else x


def _augment_maps(x, gen):
    """Random dihedral transform per sample (approximately equivariant) plus channel dropout."""
    import torch

    codes = torch.randint(0, 8, (len(x),), generator=gen)
    out = torch.empty_like(x)
    for c in range(8):
        m = codes == c
        if m.any():
            out[m] = _dihedral(x[m], c)
    keep = (torch.rand(x.shape[:2], generator=gen) > 0.1).float()[:, :, None, None]
    return out * keep / 0.9


def train_extractor(project, name: str = "trained", epochs: int | None = None, size: int | None = None,
                    batch_size: int = 128, device: str = "auto", num_workers: int | None = None,
                    invert: bool = False, use_labels: bool = True, labels: dict | None = None,
                    train_blocks: int = 2, views: int = 2, lr: float = 1e-3, seed: int = 0,
                    maps: np.ndarray | None = None, progress: bool = True, activate: bool = True) -> dict:
    """Fine-tune, save the weights beside the features, write and activate feature set `name`.

    `labels` (object_id -> label) replaces the validated labels read from the project. `maps`
    passes precomputed `trunk_maps` (benchmarks cache them). Returns a report dict.
    """
    import torch
    import torch.nn.functional as F

    from .base import torch_device

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dev = torch_device(device)
    size = size or DEFAULT_SIZE
    ids, paths = project_objects(project)
    n = len(ids)
    if n < 2:
        raise FeatureError(f"{project.root}: need at least 2 objects to train")
    _check_morphometric_kept(project)  # before the training, not after it
    if labels is None:
        labels = validated_labels(project) if use_labels else {}
    classes = sorted(set(labels.values()))
    y = torch.tensor([classes.index(labels[i]) if i in labels else -1 for i in ids]) if classes else None
    model = build_model()
    pre = Preprocess(size=size, invert=invert)
    workers = default_workers() if num_workers is None else num_workers
    if maps is None:
        maps = trunk_maps(model.to(dev), train_blocks, paths, pre, views, dev, batch_size, workers, progress, seed)
    views = maps.shape[0]
    t_maps = time.perf_counter() - t0
    _, tail = split_model(model, train_blocks)
    tail.to(dev)
    proj = torch.nn.Sequential(torch.nn.Linear(1280, 512), torch.nn.ReLU(), torch.nn.Linear(512, 128)).to(dev)
    head = torch.nn.Linear(1280, len(classes)).to(dev) if len(classes) > 1 else None
    params = list(tail.parameters()) + list(proj.parameters()) + (list(head.parameters()) if head else [])
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps_per_epoch = max(1, n // batch_size)
    # about 200 steps: minutes on 2 CPU cores for a few thousand images (train_blocks=2)
    epochs = epochs or int(np.clip(math.ceil(200 / steps_per_epoch), 2, 30))
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    losses = []
    tail.train()
    from tqdm import tqdm

    bar = tqdm(total=total, unit="step", desc="train", disable=not progress)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for b in range(steps_per_epoch):
            idx = perm[b * batch_size:(b + 1) * batch_size].numpy()
            v1 = np.random.default_rng((seed, len(losses))).integers(views, size=len(idx))
            v2 = (v1 + 1) % views if views > 1 else v1
            x1 = _augment_maps(torch.from_numpy(maps[v1, idx]).float(), gen).to(dev)
            x2 = _augment_maps(torch.from_numpy(maps[v2, idx]).float(), gen).to(dev)
            f1, f2 = tail(x1), tail(x2)
            loss = nt_xent(proj(f1), proj(f2), 0.2)
            if head is not None:
                yy = y[idx].to(dev)
                m = yy >= 0
                if m.any():
                    loss = loss + 0.5 * (F.cross_entropy(head(f1[m]), yy[m], label_smoothing=0.1)
                                         + F.cross_entropy(head(f2[m]), yy[m], label_smoothing=0.1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.update()
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", refresh=False)
    bar.close()
    t_train = time.perf_counter() - t0 - t_maps
    tail.eval()
    feats = []
    with torch.inference_mode():
        for b in range(0, n, 512):
            x = torch.from_numpy(np.array(maps[0, b:b + 512], dtype=np.float32)).to(dev)
            feats.append(F.normalize(tail(x), dim=1).cpu().numpy())
    X = np.concatenate(feats).astype(np.float32)
    weights = project.features_dir / f"{name}.pt"
    torch.save({k: v.cpu() for k, v in model.state_dict().items() if not k.startswith("_fc.")}, weights)
    report = {"name": name, "weights": str(weights), "n_images": n, "n_labelled": int((y >= 0).sum()) if y is not None else 0,
              "n_classes": len(classes), "epochs": epochs, "steps": total, "train_blocks": train_blocks,
              "views": views, "final_loss": float(np.mean(losses[-20:])), "seconds": time.perf_counter() - t0,
              "maps_seconds": round(t_maps, 1), "train_seconds": round(t_train, 1)}
    attrs = {"extractor": f"state-dict:{weights}",
             "extractor_params": {"input_size": size, "weights": str(weights), "pooling": "global-average",
                                  "normalise": "l2", "input_scale": "[-1, 1], grey x3", "training": report},
             "preprocessing": pre.attrs()}
    X, attrs = _keep_morphometric(project, ids, X, attrs)
    write_features(feature_path(project, name), ids, X, attrs)
    if activate:
        set_active(project, name)
    return report


def _check_morphometric_kept(project) -> None:
    """Refuse when the active set has a morphometric block to carry over but keeps no full
    features (`--store none`) to read it from."""
    import h5py

    from .h5 import active_name, full_kept, not_kept_message

    try:
        name = active_name(project)
        with h5py.File(feature_path(project, name), "r") as h:
            blocked = str(h.attrs.get("extractor", "")).endswith("+morphometric") and not full_kept(h)
    except (FeatureError, OSError):
        return
    if blocked:
        raise FeatureError(not_kept_message(name, "training (the trained set carries its "
                                                  "morphometric block)") +
                           "; or make a set without '+morphometric' active "
                           "(`morphocluster features PROJECT --activate NAME`) first")


def _keep_morphometric(project, ids, X, attrs):
    """If the active feature set carries morphometric features, append them to the new ones."""
    import h5py

    from .combined import append_block, morphometric_block
    from .h5 import active_name

    try:
        path = feature_path(project, active_name(project))
        z = morphometric_block(path)
    except (FeatureError, OSError):
        return X, attrs
    if z is None:
        return X, attrs
    with h5py.File(path, "r") as h:
        row = {oid: i for i, oid in enumerate(h["object_id"].asstr()[:])}
    if any(oid not in row for oid in ids):
        return X, attrs  # not every object measured: keep the CNN features alone
    X, scale = append_block(X, z[[row[oid] for oid in ids]])
    return X, {**attrs, "extractor": attrs["extractor"] + "+morphometric", "morphometric_scale": scale}
