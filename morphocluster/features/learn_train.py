"""The training loop of `learn`: whole network, two random views, NT-Xent plus labels."""

from __future__ import annotations

import math
import time

import numpy as np

HEAD_LR = 3.0  # the projection and label heads start from nothing: a larger step


def nt_xent(z1, z2, temperature: float):
    """SimCLR's loss: each view must pick its partner among the 2B - 1 other views."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(-1e9)
    n = len(z1)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def _batch(step: int, st, n: int, lab_rows: np.ndarray):
    """Rows of one step: a run through all images per epoch, plus labelled ones drawn at
    random; fixed by (seed, step), so that a resumed run sees the batches it would have."""
    k = int(round(st.batch_size * st.labelled_share)) if len(lab_rows) else 0
    per_epoch = max(1, math.ceil(n / (st.batch_size - k)))
    epoch, b = divmod(step, per_epoch)
    order = np.random.default_rng((st.seed, epoch)).permutation(n)
    rows = order[b * (st.batch_size - k):(b + 1) * (st.batch_size - k)]
    if k:
        rows = np.concatenate([rows, lab_rows[np.random.default_rng((st.seed, epoch, b)).integers(
            len(lab_rows), size=k)]])
    return rows


def train(project, run, images, pks, st, dev, ck_path, tell, checkpoint_every, max_steps):
    """Train from run["state"] (or ImageNet) to the end; save and return the weights' path,
    or None when stopped by max_steps. Saves a checkpoint on the way and when interrupted."""
    import torch
    import torch.nn.functional as F

    from .effnet import build_model
    from .learn import default_epochs, save_checkpoint

    torch.manual_seed(st.seed)
    row_of = {int(p): i for i, p in enumerate(pks)}
    classes = sorted(set(run["train"].values()) | set(run["pseudo"].values()))
    y = np.full(len(pks), -1, np.int64)
    w = np.zeros(len(pks), np.float32)
    for src, weight in ((run["pseudo"], 0.5), (run["train"], 1.0)):
        for pk, lab in src.items():
            if pk in row_of:
                y[row_of[pk]], w[row_of[pk]] = classes.index(lab), weight
    lab_rows = np.flatnonzero(y >= 0)
    k = int(round(st.batch_size * st.labelled_share)) if len(lab_rows) else 0
    epochs = st.epochs or default_epochs(len(pks), st.batch_size - k)  # a step takes batch_size - k of the run
    total = epochs * max(1, math.ceil(len(pks) / (st.batch_size - k)))
    run["steps"], run["epochs"] = total, epochs

    model = build_model().to(dev).to(memory_format=torch.channels_last)
    proj = torch.nn.Sequential(torch.nn.Linear(1280, 512), torch.nn.ReLU(), torch.nn.Linear(512, 128)).to(dev)
    head = torch.nn.Linear(1280, max(1, len(classes))).to(dev)
    opt = torch.optim.AdamW([{"params": model.parameters(), "lr": st.lr},
                             {"params": [*proj.parameters(), *head.parameters()], "lr": st.lr * HEAD_LR}],
                            weight_decay=1e-5)
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    if run["state"] is not None:
        for mod, key in ((model, "model"), (proj, "proj"), (head, "head"), (opt, "opt"), (sched, "sched")):
            mod.load_state_dict(run["state"][key])
    gen = torch.Generator().manual_seed(st.seed * 100003 + run["step"])
    yt, wt = torch.from_numpy(y), torch.from_numpy(w)

    def save():
        run["state"] = {"model": model.state_dict(), "proj": proj.state_dict(), "head": head.state_dict(),
                        "opt": opt.state_dict(), "sched": sched.state_dict()}
        save_checkpoint(ck_path, run)

    from .augment import random_views

    model.train()
    last, t_run, c_run, this_call = time.monotonic(), time.perf_counter(), time.process_time(), 0
    losses: list = []
    try:
        while run["step"] < total:
            if max_steps is not None and this_call >= max_steps:
                _account(run, t_run, c_run)
                save()
                return None
            rows = _batch(run["step"], st, len(pks), lab_rows)
            order = np.argsort(rows)
            x = torch.from_numpy(np.ascontiguousarray(images[rows[order]]))[torch.from_numpy(np.argsort(order))].to(dev)
            v = torch.cat([random_views(x, gen), random_views(x, gen)])
            f = model.extract_features(v).mean((2, 3))
            z = proj(f)
            loss = nt_xent(z[:len(rows)], z[len(rows):], st.temperature)
            yy, ww = yt[rows].repeat(2).to(dev), wt[rows].repeat(2).to(dev)
            m = yy >= 0
            if m.any() and st.supervised_weight:
                ce = F.cross_entropy(head(f[m]), yy[m], reduction="none", label_smoothing=0.1)
                loss = loss + st.supervised_weight * (ce * ww[m]).sum() / ww[m].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run["step"] += 1
            this_call += 1
            losses.append(float(loss.detach()))
            tell(0.05 + 0.85 * run["step"] / total,
                 f"training: step {run['step']} of {total}, loss {np.mean(losses[-20:]):.3f}")
            due = (run["step"] % checkpoint_every == 0) if checkpoint_every else time.monotonic() - last > 120
            if due:
                _account(run, t_run, c_run)
                t_run, c_run, last = time.perf_counter(), time.process_time(), time.monotonic()
                save()
    except BaseException:  # cancelled or failed: keep what was learnt for the next run
        _account(run, t_run, c_run)
        save()
        raise
    _account(run, t_run, c_run)
    run["final_loss"] = float(np.mean(losses[-20:])) if losses else None
    weights = project.features_dir / f"{run['name']}.pt"
    tmp = weights.with_name(weights.name + ".tmp")
    torch.save({k2: v2.cpu() for k2, v2 in model.state_dict().items() if not k2.startswith("_fc.")}, tmp)
    tmp.replace(weights)
    save()  # the weights exist: a stop during extraction resumes there, not at training
    return weights


def _account(run, t_run, c_run) -> None:
    run["seconds"] = run.get("seconds", 0.0) + time.perf_counter() - t_run
    run["cpu"] = run.get("cpu", 0.0) + time.process_time() - c_run
