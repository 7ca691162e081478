"""Random views of plankton images for learning features, on whole batches in torch.

Plankton lie in any orientation and at any position, are imaged at varying magnification and
exposure: a view turns the image by any angle (and mirrors it half the time), scales it by
0.8-1.25, shifts it a little, and changes contrast, brightness and gamma. The border pixels of
a preprocessed image are its background (it was padded with it), so pixels that come in from
outside repeat the border.
"""

from __future__ import annotations

import math


def random_views(x, gen, scale=(0.8, 1.25), shift: float = 0.08, contrast=(0.7, 1.3),
                 brightness: float = 0.1, gamma=(0.8, 1.25), noise: float = 0.02):
    """Return a random view of each image of x: uint8 (B, S, S) -> float (B, 3, S, S) in [-1, 1]."""
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    dev = x.device
    u = lambda lo, hi: torch.rand(b, generator=gen).mul(hi - lo).add(lo).to(dev)  # noqa: E731
    a = x.float().div(255.0).unsqueeze(1)
    angle = u(0, 2 * math.pi)
    s = torch.exp(u(math.log(scale[0]), math.log(scale[1])))
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0).to(dev)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos * flip, -sin, u(-shift, shift)], 1),
                         torch.stack([sin * flip, cos, u(-shift, shift)], 1)], 1)
    grid = F.affine_grid(theta, a.shape, align_corners=False)
    a = F.grid_sample(a, grid, mode="bilinear", padding_mode="border", align_corners=False)
    bg = a[:, :, 0, :].median(dim=2).values.view(b, 1, 1, 1)  # the top border row: background
    a = (a - bg) * u(*contrast).view(b, 1, 1, 1) + bg + u(-brightness, brightness).view(b, 1, 1, 1)
    a = a.clamp(0, 1).pow(u(*gamma).view(b, 1, 1, 1))
    if noise:
        a = a + noise * torch.randn(a.shape, generator=gen).to(dev)
    a = a.clamp(0, 1).mul(2).sub(1)
    return a.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
