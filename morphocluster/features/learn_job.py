"""The learn job's options and summary, shared by `morphocluster learn` and the jobs page.

`learn_params` checks the options (a form's strings, or the typed values of the CLI and of
`jobs.start_job`) and returns them as plain JSON values; `learn_arguments` turns them into the
`LearnSettings` and keywords of `learn.learn`; `run_learn` is the job "learn"; `summary_lines`
says what a run did: images, labels, pseudo-labels, steps, held-out accuracy of the active set
and of the new one, whether it switched and why, time, the report's file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,63}")  # a feature set's file name, no path
DEVICES = ("auto", "cpu", "cuda")
FLAGS = ("invert", "no_labels", "no_imported", "no_pseudo", "no_switch")
INTS = {"epochs": (1, 1000), "size": (32, 1024), "batch_size": (8, 4096), "seed": (0, 2**31 - 1)}
HOLDOUT = (0.0, 0.9)
TRUE, FALSE = ("1", "on", "true", "yes"), ("", "0", "off", "false", "no")
KNOWN = {"name", *INTS, "holdout", "device", *FLAGS}  # a job's params (a form's other fields are ignored)


def learn_params(values) -> dict:
    """Return the learn options in `values` (a mapping: form strings or typed values), checked;
    ValueError with a clear message for a bad one. Absent or empty fields are left out."""
    out: dict = {}
    name = values.get("name")
    if name is not None and str(name).strip():
        name = str(name).strip()
        if not NAME.fullmatch(name):
            raise ValueError(f"name: {name[:70]!r} is not a feature set name (letters, digits, "
                             "'_', '-', '+', '.', at most 64, no path)")
        out["name"] = name
    for key, (lo, hi) in INTS.items():
        value = _int(key, values.get(key), lo, hi)
        if value is not None:
            out[key] = value
    holdout = _float("holdout", values.get("holdout"), *HOLDOUT)
    if holdout is not None:
        out["holdout"] = holdout
    device = values.get("device")
    if device is not None and str(device).strip():
        if str(device).strip() not in DEVICES:
            raise ValueError(f"device: {str(device)[:40]!r} is not one of {', '.join(DEVICES)}")
        out["device"] = str(device).strip()
    for key in FLAGS:
        if _flag(key, values.get(key)):
            out[key] = True
    return out


def _int(key, raw, lo, hi):
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, str)) or (
            isinstance(raw, str) and not re.fullmatch(r"-?[0-9]{1,12}", raw.strip())):
        raise ValueError(f"{key}: {str(raw)[:40]!r} is not a whole number")
    value = int(raw)
    if not lo <= value <= hi:
        raise ValueError(f"{key}: {value} is out of range ({lo} to {hi})")
    return value


def _float(key, raw, lo, hi):
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: {str(raw)[:40]!r} is not a number") from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{key}: {str(raw)[:40]} is out of range ({lo:g} to {hi:g})")
    return value


def _flag(key, raw) -> bool:
    if raw is None or isinstance(raw, bool):
        return bool(raw)
    text = str(raw).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"{key}: {str(raw)[:40]!r} is not on or off")


def learn_arguments(params: dict):
    """(LearnSettings, keywords of `learn`) for checked params (`learn_params`)."""
    from .learn import LearnSettings

    st = LearnSettings(**{k: params[k] for k in ("epochs", "size", "batch_size", "holdout", "seed")
                          if k in params}, invert=bool(params.get("invert")))
    if params.get("no_pseudo") or params.get("no_labels"):  # self-supervised only: no pseudo-labels either
        st.pseudo_confidence = 1.0
    kwargs = {"name": params.get("name"), "device": params.get("device", "auto"),
              "imported": not params.get("no_imported"), "switch": not params.get("no_switch"),
              "labels": {} if params.get("no_labels") else None}
    return st, kwargs


@dataclass
class LearnDone:
    """What a learn job did (its row shows `summary()`): the report of `learn`."""

    report: dict
    switch: bool = True

    def summary(self) -> str:
        return "; ".join(summary_lines(self.report, self.switch, short=True))[:500]


def run_learn(project, params: dict, progress) -> LearnDone:
    """The job "learn": checked params, no decoding processes forked from a server's thread."""
    from .learn import learn

    unknown = ", ".join(map(repr, sorted(set(params) - KNOWN)))
    if unknown:
        raise ValueError(f"learn: unknown options {unknown}; the options are {', '.join(sorted(KNOWN))}")
    checked = learn_params(params)
    st, kwargs = learn_arguments(checked)
    report = learn(project, st, num_workers=0, progress=progress, **kwargs)
    return LearnDone(report, kwargs["switch"])


def _acc(value, n: int) -> str:
    return f"{value:.1%} ({round(value * n)} of {n})"


def summary_lines(rep: dict, switch: bool = True, short: bool = False, root=None) -> list[str]:
    """What a run of `learn` did, a line each (`short`: the parts of the job's one-line summary)."""
    ck, new, old = rep["check"], rep["name"], rep.get("previous")
    n = ck.get("n_heldout", rep["n_heldout"])
    lines = [f"{new}: {rep['n_images']:,} images, {rep['steps']:,} steps ({rep['epochs']} epoch"
             f"{'s' if rep['epochs'] != 1 else ''}, {rep['size']} px)"
             + (f", resumed from step {rep['resumed_from']:,}" if rep.get("resumed_from") else ""),
             f"labels: {rep['n_labels']:,} trained on ({rep['n_classes']} classes), {rep['n_heldout']:,} "
             f"held out for the check, {rep['n_pseudo']:,} pseudo-labels from confident suggestions"]
    if ck.get("new") is None:
        lines.append(f"held-out accuracy not measured: {ck.get('reason')}")
    else:
        before = (f"{_acc(ck['old'], n)} with {old} (active)" if ck.get("old") is not None
                  else "none before (no active feature set)")
        lines.append(f"held-out accuracy: {before}, {_acc(ck['new'], n)} with {new}")
    if rep["switched"]:
        lines.append(f"switched: {new} is now the active feature set (index and suggestion model rebuilt)")
    elif ck.get("better") and not switch:
        proj = root if root is not None else "PROJECT"
        lines.append(f"not switched (switch turned off): {new} is better; make it active with "
                     f"`morphocluster features {proj} --activate {new}`, then `morphocluster index {proj}`")
    elif ck.get("new") is None:
        lines.append(f"not switched: without the check {old} stays active" if old
                     else "not switched: without the check no set is made active")
    else:
        lines.append(f"not switched: {new} is not better" + (f", {old} stays active" if old else ""))
    if short:
        lines.append(f"{rep['seconds']:,.0f} s wall, {rep['cpu_seconds']:,.0f} s CPU")
    else:
        by = rep.get("seconds_by_step") or {}
        lines.append(f"time: {rep['seconds']:,.0f} s wall, {rep['cpu_seconds']:,.0f} s CPU (this run: "
                     f"decoding {by.get('decode', 0):,.0f} s, training {by.get('train', 0):,.0f} s, "
                     f"features {by.get('extract', 0):,.0f} s)")
        where = f"{root}/features" if root is not None else "features"
        lines.append(f"report: {where}/{new}.learn.json")
    return lines
