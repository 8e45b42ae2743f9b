"""Image corruptions at five intensities for the calibration-under-shift study (Fig. 3 left; Ovadia et al. 2019).

Six corruptions of an image batch (N, C, H, W) in [0, 1], each at intensity 1..5 (0 returns an exact copy), built
on kornia (a maintained differentiable vision library; it installs beside torch without changing it). Every output
is clamped to [0, 1] and has the input's shape and dtype. Random parts (rotation / hue direction, noise) come from
a `torch.Generator` seeded with `seed`, so the same call gives the same batch; no global RNG is touched.

| corruption     | parameter (intensity 1 .. 5)              | kornia function                                  |
|----------------|-------------------------------------------|--------------------------------------------------|
| rotation       | angle 15, 30, 45, 60, 75 degrees, sign    | geometry.transform.rotate (bilinear, zero fill)  |
|                | drawn per image                           |                                                  |
| gaussian_blur  | sigma 0.5, 1.0, 1.5, 2.0, 3.0 pixels      | filters.gaussian_blur2d (kernel 2*ceil(3 sigma)+1, |
|                |                                           | reflect border)                                  |
| gaussian_noise | std 0.04, 0.06, 0.08, 0.09, 0.10          | additive noise (plain torch), then clamp         |
| hue            | shift 0.05, 0.1, 0.2, 0.3, 0.5 turns      | enhance.adjust_hue (0.5 turn = 180 degrees)      |
|                | (x 2 pi rad), sign drawn per image        |                                                  |
| brightness     | + 0.1, 0.2, 0.3, 0.4, 0.5                 | enhance.adjust_brightness (additive, clipped)    |
| contrast       | factor 0.75, 0.5, 0.4, 0.3, 0.15          | enhance.adjust_contrast_with_mean_subtraction    |
|                |                                           | (pulls pixels towards the image's gray mean)     |

Noise, brightness and contrast levels are those of CIFAR-10-C (Hendrycks & Dietterich 2019); rotation spans the
15..75 degrees of the paper's shifts; blur and hue levels are chosen to grow monotonically up to a strong shift.
Hue needs RGB: on 1-channel images it is a no-op (an exact copy at every intensity).
"""

from __future__ import annotations

import math
from types import MappingProxyType

import torch

__all__ = ["CORRUPTIONS", "LEVELS", "corrupt"]

CORRUPTIONS = ("rotation", "gaussian_blur", "gaussian_noise", "hue", "brightness", "contrast")
LEVELS = MappingProxyType(
    {
        "rotation": (15.0, 30.0, 45.0, 60.0, 75.0),  # degrees
        "gaussian_blur": (0.5, 1.0, 1.5, 2.0, 3.0),  # sigma, pixels
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # std
        "hue": (0.05, 0.1, 0.2, 0.3, 0.5),  # turns of the hue circle
        "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added to every pixel
        "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # contrast factor (1 = unchanged)
    }
)


def _signs(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) of +-1, one per image."""
    return torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1


def corrupt(images: torch.Tensor, name: str, intensity: int, seed: int = 0) -> torch.Tensor:
    """`images` (N, C, H, W) in [0, 1] with corruption `name` at `intensity` (0 = none, 1..5) -> (N, C, H, W)."""
    if name not in LEVELS:
        raise ValueError(f"unknown corruption '{name}' (choose from {', '.join(CORRUPTIONS)})")
    if not 0 <= intensity <= 5:
        raise ValueError(f"intensity must be 0..5, got {intensity}")
    if images.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(images.shape)}")
    if intensity == 0 or (name == "hue" and images.shape[1] != 3):
        return images.clone()
    import kornia  # imported here: only the calibration study needs it

    level = LEVELS[name][intensity - 1]
    gen = torch.Generator().manual_seed(seed)
    n, _, h, w = images.shape
    x = images.float()
    if name == "rotation":
        angle = (level * _signs(n, gen)).to(x.device)  # (N,) degrees, counter-clockwise when positive
        out = kornia.geometry.transform.rotate(x, angle, padding_mode="zeros", align_corners=True)
    elif name == "gaussian_blur":
        radius = min(math.ceil(3 * level), min(h, w) - 1)  # reflect padding needs radius < image side
        out = kornia.filters.gaussian_blur2d(x, (2 * radius + 1, 2 * radius + 1), (level, level), border_type="reflect")
    elif name == "gaussian_noise":
        out = x + level * torch.randn(x.shape, generator=gen).to(x.device)
    elif name == "hue":
        shift = (2 * math.pi * level * _signs(n, gen)).to(x.device)  # (N,) radians in [-pi, pi]
        out = kornia.enhance.adjust_hue(x, shift)
    elif name == "brightness":
        out = kornia.enhance.adjust_brightness(x, level)
    else:  # contrast
        out = kornia.enhance.adjust_contrast_with_mean_subtraction(x, level)
    return out.clamp(0.0, 1.0).to(images.dtype)
