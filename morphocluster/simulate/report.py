"""Write a simulation's results: JSON, the coverage/precision curve (PNG) and a text table."""

from __future__ import annotations

import json
from pathlib import Path

ROWS = (
    ("objects", "objects", "{:d}"),
    ("labelled", "objects labelled", "{:d}"),
    ("coverage", "coverage", "{:.1%}"),
    ("precision", "precision of labels", "{:.1%}"),
    ("classes_found", "classes found", "{:d}"),
    ("clicks", "clicks", "{:d}"),
    ("objects_per_click", "labelled objects per click", "{:.2f}"),
    ("unlabelled", "objects left unlabelled", "{:d}"),
    ("whole_set_objects_per_click", "whole-set objects per click", "{:.2f}"),
    ("whole_set_precision", "whole-set precision", "{:.1%}"),
    ("seconds", "machine time (s)", "{:.0f}"),
    ("learn_seconds", "  of which learning (s)", "{:.0f}"),
    ("learn_cpu_seconds", "CPU time of learning (s)", "{:.0f}"),
)


def table(results: dict[str, dict]) -> str:
    """Return a plain-text table with one column per named result."""
    names = list(results)
    width = max([28] + [len(n) + 2 for n in names])
    lines = ["".ljust(30) + "".join(n.rjust(width) for n in names)]
    for key, label, fmt in ROWS:
        cells = []
        for n in names:
            v = results[n].get(key)
            cells.append((fmt.format(v) if v is not None else "-").rjust(width))
        lines.append(label.ljust(30) + "".join(cells))
    kinds = sorted({k for r in results.values() for k in r.get("clicks_by_kind", {})})
    for k in kinds:
        lines.append(f"  clicks: {k}".ljust(30) + "".join(
            str(results[n].get("clicks_by_kind", {}).get(k, 0)).rjust(width) for n in names))
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")


def plot_curve(results: dict[str, dict], path: Path) -> None:
    """Plot coverage and precision against clicks for each named result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        curve = r.get("curve") or []
        n = r["objects"] or 1
        x = [c["clicks"] for c in curve]
        ax1.plot(x, [c["labelled"] / n for c in curve], label=name)
        ax2.plot(x, [c["correct"] / c["labelled"] if c["labelled"] else 1.0 for c in curve], label=name)
    ax1.set(xlabel="clicks", ylabel="coverage (objects labelled)", title="coverage")
    ax2.set(xlabel="clicks", ylabel="precision of labels", title="precision")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_all(results: dict[str, dict], out: Path) -> list[Path]:
    """Write results.json (or <name>.json each), curve.png and table.txt into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, r in results.items():
        p = out / f"{name}.json"
        write_json(r, p)
        paths.append(p)
    plot_curve(results, out / "curve.png")
    (out / "table.txt").write_text(table(results) + "\n", encoding="utf-8")
    return paths + [out / "curve.png", out / "table.txt"]
