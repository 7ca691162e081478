"""Extractor names -> extractor objects."""

from __future__ import annotations

import re

from .base import Extractor

DEFAULT = "efficientnet-lite0+morphometric"  # chosen with benchmarks/simulate_planktonset.py
NAMES = ("efficientnet-lite0", "efficientnet-lite0-head", "morphometric", "pixels", "torchscript:PATH",
         "state-dict:PATH", "learned:PATH", "CNN+morphometric", "external:FILE")
COMBINED = "+morphometric"  # suffix: a CNN extractor's features with the morphometric ones appended


def get_extractor(spec: str, size: int | None = None, invert: bool = False,
                  rotations: int = 1) -> Extractor:
    """Return the extractor named by `spec` (see NAMES); `external:` is handled by the runner.

    `rotations` (1, 2, 4 or 8) averages the CNN features over turned copies of each image.
    'efficientnet-lite0+morphometric' (any CNN + '+morphometric') appends morphometric features.
    """
    if _combined(spec):
        from .combined import Combined

        cnn = get_extractor(spec[:-len(COMBINED)], size=size, invert=invert, rotations=rotations)
        if cnn.spec in ("morphometric", "pixels"):
            raise ValueError(f"{spec!r}: '+morphometric' goes after a CNN extractor")
        return Combined(cnn)
    kind, _, arg = spec.partition(":")
    if rotations != 1 and kind not in ("efficientnet-lite0", "efficientnet-lite0-head", "state-dict", "learned"):
        raise ValueError(f"--rotations applies to efficientnet-lite0, state-dict and learned, not {kind}")
    if kind in ("efficientnet-lite0", "efficientnet-lite0-head"):
        from .effnet import DEFAULT_BLOCKS, DEFAULT_SIZE, EfficientNetLite0

        blocks = DEFAULT_BLOCKS if kind == "efficientnet-lite0" else ()  # -head: the head alone
        return EfficientNetLite0(size=size or DEFAULT_SIZE, invert=invert, rotations=rotations,
                                 blocks=blocks, spec=kind)
    if kind == "morphometric":
        from .morphometric import Morphometric

        return Morphometric()
    if kind == "pixels":
        from .pixels import Pixels

        return Pixels(size=size or 32, invert=invert)
    if kind == "learned" and arg:  # weights `learn` wrote, pooled like the default set
        from .effnet import DEFAULT_BLOCKS, EfficientNetLite0

        return EfficientNetLite0(size=size or 64, invert=invert, weights=arg, spec=f"learned:{arg}",
                                 rotations=rotations, blocks=DEFAULT_BLOCKS)
    if kind in ("torchscript", "state-dict") and arg:
        from .custom import TorchScript, state_dict_extractor

        if kind == "torchscript":
            return TorchScript(arg, size=size or 128, invert=invert)
        return state_dict_extractor(arg, size=size or 128, invert=invert, rotations=rotations)
    raise ValueError(f"unknown extractor {spec!r}; choose one of {', '.join(NAMES)}")


def default_name(spec: str) -> str:
    """A feature-set name derived from the extractor spec."""
    if _combined(spec):
        return default_name(spec[:-len(COMBINED)]) + COMBINED
    kind, _, arg = spec.partition(":")
    if arg:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", arg.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0])
        return f"{kind}-{stem}".strip("-")
    return kind


def _combined(spec: str) -> bool:
    return spec.endswith(COMBINED) and spec != COMBINED[1:]
