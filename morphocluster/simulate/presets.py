"""Named annotator settings: the original MorphoCluster procedure and this tool's best one."""

from __future__ import annotations

from dataclasses import replace

from .annotator import Settings

PRESETS = {
    # The original procedure: PCA 64, HDBSCAN leaf 128 then 64, approve or dissolve after
    # looking at the whole cluster, grow by 16 k-means prototypes judging whole pages.
    "faithful": Settings(name="faithful", rounds=(128, 64), reduce="pca:64", method="leaf",
                         validate_pages=None, clean=False, split_mixed=False, grow="pages",
                         n_prototypes=16, grow_page_ok=0.9),
    # This tool's workflow, chosen with benchmarks/simulate_planktonset.py: smaller rounds; look
    # at the first screen, then the least typical one, cutting an impure tail by bisection;
    # clean instead of dissolving (a cluster seen whole from 60 % purity when that pays);
    # split mixed clusters; grow by page search, then screen by screen with first-wrong clicks;
    # a wrong object it would remove or reject one by one is given its class by name instead.
    "best": Settings(name="best", rounds=(64, 32, 16, 8), reduce="pca:64", method="leaf",
                     validate_pages=1, clean=True, validate_search=True, tail_purity=0.8,
                     approve_purity_seen=0.6, min_clean_gain=2.0, split_mixed=True,
                     grow="pages+direct", n_prototypes=None, direct_min_gain=2.0, relabel=True),
}


def preset(which: str, /, **overrides) -> Settings:
    """Return a copy of a named preset with some settings replaced (`name=` renames it)."""
    if which not in PRESETS:
        raise KeyError(f"unknown preset {which!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[which], **overrides)
