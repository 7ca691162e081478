"""The user's own trained model: a TorchScript file or an EfficientNet-Lite0 state dict."""

from __future__ import annotations

from .base import Extractor, file_digest, torch_device
from .effnet import EfficientNetLite0, to_input
from .preprocess import Preprocess


class TorchScript(Extractor):
    """A TorchScript module taking (B, 3, S, S) floats in [-1, 1]; outputs (B, d) or (B, C, H, W)."""

    def __init__(self, path: str, size: int = 128, invert: bool = False):
        self.path = str(path)
        self.spec = f"torchscript:{self.path}"
        self.preprocess = Preprocess(size=size, invert=invert)

    def params(self) -> dict:
        return {"path": self.path, "sha256": file_digest(self.path), "input_size": self.preprocess.size,
                "pooling": "global-average if 4-D", "normalise": "l2", "input_scale": "[-1, 1], grey x3"}

    def setup(self, device="cpu"):
        import torch

        self.device = torch_device(device)
        try:
            self.model = torch.jit.load(self.path, map_location=self.device).eval()
        except Exception as exc:
            raise ValueError(f"{self.path}: not a TorchScript model: {exc}") from exc

    def transform(self, batch):
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            y = self.model(to_input(batch, self.device))
            if isinstance(y, (tuple, list)):
                y = y[0]
            if y.ndim == 4:
                y = y.mean((2, 3))
            return F.normalize(y.flatten(1).float(), dim=1).cpu().numpy()


def state_dict_extractor(path: str, size: int = 128, invert: bool = False,
                         rotations: int = 1) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the weights of the state dict at `path` (the head's pooled
    output only, as `morphocluster train` writes)."""
    return EfficientNetLite0(size=size, invert=invert, weights=str(path), spec=f"state-dict:{path}",
                             rotations=rotations, blocks=())
