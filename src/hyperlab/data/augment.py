"""Augmentation done on a whole batch at once, on its device: no per-sample PIL work."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def random_affine(images: Tensor, degrees: float, translate: float, generator: torch.Generator | None = None) -> Tensor:
    """Rotate each image by a random angle in [-degrees, degrees] and shift it by up to `translate` of its size
    in x and y (independently per image), filling with zeros. `images` is (N, C, H, W) float; the draws come from
    `generator` (on the images' device), or torch's default stream."""
    n = images.shape[0]
    angle = (torch.rand(n, device=images.device, generator=generator) * 2 - 1) * math.radians(degrees)
    shift = (torch.rand(n, 2, device=images.device, generator=generator) * 2 - 1) * translate * 2  # [-1, 1] span
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
