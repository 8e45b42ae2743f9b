"""Calibration under shift: the AdaECE metric against hand-computed values, the corruptions (identity at intensity
0, range, shape, monotone distortion, seeded determinism), `calibration_under_corruption` on a predictor with a
closed-form answer. The command over trained runs (`pclm-report calibration`) is tested in
tests/cli/test_report_calibration.py."""

import numpy as np
import pytest
import torch

from pclm.evaluation.calibration import adaece_of_logits, calibration_under_corruption, load_adaece
from pclm.vision.corruptions import CORRUPTIONS, LEVELS, corrupt

# ---- AdaECE: hand-computed oracles -------------------------------------------------------------------------------

# Six two-class predictions; confidence = top probability, prediction = its class:
#   sample  probs        ref  conf  pred  correct
#   0       (.9, .1)     0    .90   0     yes
#   1       (.2, .8)     0    .80   1     no
#   2       (.4, .6)     1    .60   1     yes
#   3       (.7, .3)     1    .70   0     no
#   4       (.45, .55)   1    .55   1     yes
#   5       (.05, .95)   1    .95   1     yes
# sorted by confidence: .55 y, .60 y | .70 n, .80 n | .90 y, .95 y  (3 equal-mass bins of 2)
#   bin 1: acc 1, conf .575 -> |1 - .575| = .425
#   bin 2: acc 0, conf .75  -> .75
#   bin 3: acc 1, conf .925 -> .075
# AdaECE = (2/6)(.425 + .75 + .075) = 1.25 / 3 = 0.41666...; accuracy 4/6.
# With 4 bins, array_split gives sizes 2, 2, 1, 1: (2/6)(.425) + (2/6)(.75) + (1/6)|1 - .9| + (1/6)|1 - .95|
#   = (.85 + 1.5 + .1 + .05) / 6 = 2.5 / 6 = 0.41666... as well; with 1 bin: |4/6 - 4.5/6| = 0.5/6 = 0.08333...
PROBS = [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3], [0.45, 0.55], [0.05, 0.95]]
REFS = [0, 0, 1, 1, 1, 1]


@pytest.fixture(scope="module")
def metric():
    return load_adaece()


def test_adaece_hand_computed(metric):
    out = metric.compute(probabilities=PROBS, references=REFS, n_bins=3)
    assert out["adaece"] == pytest.approx(1.25 / 3, abs=1e-12) and out["accuracy"] == pytest.approx(4 / 6)
    assert out["bins"] == 3
    assert metric.compute(probabilities=PROBS, references=REFS, n_bins=4)["adaece"] == pytest.approx(2.5 / 6)
    assert metric.compute(probabilities=PROBS, references=REFS, n_bins=1)["adaece"] == pytest.approx(0.5 / 6)
    # default 15 bins > 6 samples: one sample per bin, so AdaECE = mean |correct - conf|
    # = (.45 + .4 + .7 + .8 + .1 + .05) / 6 = 2.5 / 6
    out = metric.compute(probabilities=PROBS, references=REFS)
    assert out["bins"] == 6 and out["adaece"] == pytest.approx(2.5 / 6)


def test_adaece_confidences_form_matches_probabilities():
    conf = [max(p) for p in PROBS]
    pred = [int(np.argmax(p)) for p in PROBS]
    out = load_adaece("confidences").compute(confidences=conf, predictions=pred, references=REFS, n_bins=3)
    assert out["adaece"] == pytest.approx(1.25 / 3, abs=1e-12)
    logits = torch.log(torch.tensor(PROBS, dtype=torch.float64))  # softmax(log p) = p
    assert adaece_of_logits(logits, torch.tensor(REFS), n_bins=3)["adaece"] == pytest.approx(1.25 / 3)


def test_adaece_perfect_calibration_is_zero(metric):
    # one-hot predictions, all correct: confidence 1, accuracy 1 in every bin
    assert metric.compute(probabilities=[[1.0, 0.0], [0.0, 1.0]] * 5, references=[0, 1] * 5)["adaece"] == 0.0
    # confidence 0.75 everywhere and 3 of every 4 correct in each bin of 4
    m = load_adaece("confidences")
    out = m.compute(confidences=[0.75] * 8, predictions=[1] * 8, references=[1, 1, 1, 0] * 2, n_bins=2)
    assert out["adaece"] == pytest.approx(0.0, abs=1e-15) and out["accuracy"] == 0.75


# ---- corruptions --------------------------------------------------------------------------------------------------


def _images(channels: int = 3, n: int = 4) -> torch.Tensor:
    """Smooth colourful 32x32 test images (N, C, 32, 32) in [0, 1]; each image a shifted copy of the first."""
    t = torch.linspace(0, 1, 32)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    img = torch.stack(
        [0.5 + 0.4 * torch.sin(6 * xx + 2 * yy), 0.5 + 0.4 * torch.cos(5 * yy - 3 * xx), 0.3 + 0.3 * xx * yy]
    )[:channels]
    return torch.stack([img.roll(5 * i, -1) for i in range(n)])


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruption_range_shape_identity_monotone(name, channels):
    x = _images(channels)
    assert torch.equal(corrupt(x, name, 0), x)
    diffs = []
    for i in range(1, 6):
        y = corrupt(x, name, i, seed=1)
        assert y.shape == x.shape and y.dtype == x.dtype and 0.0 <= y.min() and y.max() <= 1.0
        diffs.append((y - x).abs().mean().item())
    if name == "hue" and channels == 1:
        assert diffs == [0.0] * 5  # hue is a no-op on gray images
    else:
        assert 0.0 < diffs[0] and all(a < b for a, b in zip(diffs, diffs[1:])), diffs


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruption_deterministic_given_seed(name):
    x = _images()
    assert torch.equal(corrupt(x, name, 3, seed=5), corrupt(x, name, 3, seed=5))


def test_corruption_seed_matters_for_random_ones_and_levels_table():
    x = _images(n=16)
    for name in ("rotation", "gaussian_noise", "hue"):
        assert not torch.equal(corrupt(x, name, 3, seed=0), corrupt(x, name, 3, seed=1))
    # brightness is +level clipped: an all-0.2 image at intensity 2 becomes 0.4 exactly (up to float rounding)
    assert torch.allclose(corrupt(torch.full((1, 3, 8, 8), 0.2), "brightness", 2), torch.full((1, 3, 8, 8), 0.4))
    assert set(LEVELS) == set(CORRUPTIONS) and all(len(v) == 5 for v in LEVELS.values())
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "fog", 1)
    with pytest.raises(ValueError, match="intensity"):
        corrupt(x, "hue", 6)


# ---- calibration_under_corruption ---------------------------------------------------------------------------------


def test_calibration_under_corruption_closed_form():
    # logits (log 3, 0) for every image: confidence 0.75 on class 0; every label is 0, so accuracy is 1 and
    # AdaECE = |1 - 0.75| = 0.25 on the clean set and under every corruption
    seen = []

    def predict_fn(x):
        seen.append(x.clone())
        return torch.tensor([[np.log(3.0), 0.0]]).repeat(len(x), 1)

    x, labels = _images(n=6), torch.zeros(6, dtype=torch.int64)
    res = calibration_under_corruption(predict_fn, x, labels, intensities=[1, 5], n_bins=3)
    assert res["clean"] == {"adaece": pytest.approx(0.25), "accuracy": 1.0}
    assert set(res["corrupted"]) == set(CORRUPTIONS)
    for levels in res["corrupted"].values():
        assert set(levels) == {"1", "5"}
        assert all(v == {"adaece": pytest.approx(0.25), "accuracy": 1.0} for v in levels.values())
    assert len(seen) == 1 + 6 * 2 and torch.equal(seen[0], x)
    assert torch.equal(seen[1], corrupt(x, CORRUPTIONS[0], 1, seed=0))  # the predictor saw the corrupted batch
    assert res["n_images"] == 6 and res["n_bins"] == 3
