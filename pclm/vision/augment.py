"""Training-time data augmentation in plain torch (no torchvision): the standard CIFAR recipe, a random crop of the
image's own size from the image zero-padded by 4 pixels on every side, then a random horizontal flip with
probability 1/2 (He et al. 2016; torchvision's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``).

The random numbers are drawn on the CPU from the global torch RNG (one `randint` for the offsets, one `rand` for the
flips), so a seed fixes them whatever device the batch is on, and a checkpoint's RNG state replays them on resume.
The crop and flip are one gather on the batch's own device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["random_crop_flip"]


def random_crop_flip(images: torch.Tensor, padding: int = 4, flip_prob: float = 0.5) -> torch.Tensor:
    """Randomly shifted and flipped copies of `images` (B, C, H, W) or one image (C, H, W); same shape and dtype.

    Image b is `pad(images)[b, :, dy:dy + H, dx:dx + W]` with dy, dx uniform in 0 .. 2 * padding (0 pixels of
    shift at dy = dx = padding), mirrored left-right when its flip draw is below `flip_prob`. Uncovered pixels are 0.
    """
    if images.dim() not in (3, 4):
        raise ValueError(f"random_crop_flip takes (B, C, H, W) or (C, H, W) images, got shape {tuple(images.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    single = images.dim() == 3
    x = images.unsqueeze(0) if single else images  # (B, C, H, W)
    b, _, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (b, 2))  # (B, 2): dy, dx -- CPU global RNG
    flips = torch.rand(b) < flip_prob  # (B,)
    offsets, flips = offsets.to(x.device), flips.to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H + 2p, W + 2p)
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = offsets[:, 0:1] + ar_h  # (B, H)
    cols = offsets[:, 1:2] + torch.where(flips[:, None], w - 1 - ar_w, ar_w)  # (B, W), reversed where flipped
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    out = out.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)
    return out[0] if single else out
