"""pclm.vision.augment.random_crop_flip and `data.augment`: every output image is one of the 2 * 9 * 9 flipped /
shifted zero-padded copies of its input (built here by hand, slice by slice), about half are flipped, a seed fixes the
draws, and the config key round-trips and reaches training (tiny CLI runs on synthetic MNIST-format files)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pclm.config import load_config, save_config
from pclm.errors import UsageError
from pclm.vision.augment import random_crop_flip

ROOT = Path(__file__).resolve().parents[2]


def shifted(image: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """`image` (C, H, W) moved down by dy and right by dx pixels (negative: up / left), zeros where uncovered,
    after a left-right mirror when `flip` -- the expected output of a crop at offset (padding - dy, padding - dx)."""
    src = image.flip(-1) if flip else image
    _, h, w = src.shape
    out = torch.zeros_like(src)
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = src[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def which_copy(image: torch.Tensor, out: torch.Tensor, padding: int) -> list[tuple[int, int, bool]]:
    """Every (dy, dx, flip) whose hand-built copy of `image` equals `out` exactly."""
    r = range(-padding, padding + 1)
    return [(dy, dx, f) for dy in r for dx in r for f in (False, True) if torch.equal(shifted(image, dy, dx, f), out)]


def test_shape_dtype_and_input_untouched():
    x = torch.rand(5, 3, 32, 32)
    before = x.clone()
    torch.manual_seed(0)
    y = random_crop_flip(x)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.equal(x, before)
    assert random_crop_flip(x[0]).shape == (3, 32, 32)
    assert random_crop_flip(torch.rand(4, 1, 28, 28)).shape == (4, 1, 28, 28)  # MNIST-sized images too
    with pytest.raises(ValueError):
        random_crop_flip(torch.rand(4, 784))  # flattened inputs are not images


def test_every_output_is_one_shift_or_flip_of_its_input():
    # positive random pixels: the 162 candidate copies all differ, so exactly one can match
    x = torch.rand(64, 3, 8, 8) + 0.1
    torch.manual_seed(1)
    y = random_crop_flip(x, padding=4)
    seen = set()
    for image, out in zip(x, y):
        matches = which_copy(image, out, 4)
        assert len(matches) == 1
        seen.add(matches[0])
    # the draws cover every vertical and horizontal offset and both orientations
    assert {dy for dy, _, _ in seen} == {dx for _, dx, _ in seen} == set(range(-4, 5))
    assert {f for _, _, f in seen} == {False, True}


def test_hand_built_example():
    # one 1x3x3 image, padding 1: the output is a copy shifted by at most 1 pixel, possibly mirrored
    x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    expected_all = {(dy, dx, f): shifted(x[0], dy, dx, f) for dy in (-1, 0, 1) for dx in (-1, 0, 1) for f in (0, 1)}
    assert torch.equal(expected_all[(1, -1, 0)][0], torch.tensor([[0.0, 0, 0], [2, 3, 0], [5, 6, 0]]))
    assert torch.equal(expected_all[(0, 0, 1)][0], torch.tensor([[3.0, 2, 1], [6, 5, 4], [9, 8, 7]]))
    for seed in range(20):
        torch.manual_seed(seed)
        out = random_crop_flip(x, padding=1)[0]
        assert sum(torch.equal(out, e) for e in expected_all.values()) == 1


def test_no_padding_means_identity_or_mirror_and_about_half_are_mirrored():
    x = torch.rand(2000, 1, 4, 4) + 0.1
    torch.manual_seed(2)
    y = random_crop_flip(x, padding=0)
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all())  # every image is exactly one of the two
    assert 0.45 < mirrored.float().mean().item() < 0.55  # binomial(2000, 1/2): 4.5 standard deviations each side
    torch.manual_seed(2)
    assert torch.equal(random_crop_flip(x, padding=0, flip_prob=0.0), x)


def test_same_seed_same_output_other_seed_other_output():
    x = torch.rand(16, 3, 32, 32)
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        outs.append(random_crop_flip(x))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])


@pytest.mark.gpu
def test_gpu_batch_gets_the_cpu_draws():
    x = torch.rand(16, 3, 32, 32)
    torch.manual_seed(3)
    on_cpu = random_crop_flip(x)
    torch.manual_seed(3)
    on_gpu = random_crop_flip(x.cuda())
    assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), on_cpu)


def test_config_key_round_trips_and_bad_values_are_rejected(tmp_path):
    assert load_config(None, task="vision").data.augment is False
    cfg = load_config(None, ["data.augment=true"], task="vision")
    assert cfg.data.augment is True
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml").data.augment is True
    with pytest.raises(UsageError, match="config key 'data.augment' must be bool"):
        load_config(None, ["data.augment=sometimes"], task="vision")
    with pytest.raises(UsageError, match="config key 'data.augment' must be bool"):
        load_config(None, ["data.augment=1"], task="vision")
    for algo in ("bp", "pc", "ipc"):  # the shipped AlexNet configs load, with gamma = 1.0 for PC / iPC
        c = load_config(ROOT / "configs" / "vision" / f"alexnet_cifar10_{algo}.yaml")
        assert (c.algo, c.model["name"], c.data.dataset, c.train.lr) == (algo, "alexnet", "cifar10", 5e-5)
        assert algo == "bp" or c.pc.inference_lr == 1.0
