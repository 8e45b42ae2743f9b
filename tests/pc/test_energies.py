"""Energies against their closed forms: values and gradients."""

import math

import torch

from pclm.pc import IGNORE_INDEX, cross_entropy, gaussian, softmax_kl


def test_gaussian_value_gradient_and_mask():
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]], requires_grad=True)
    mu = torch.tensor([[0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    energy = gaussian(x, mu)
    assert math.isclose(energy.item(), 0.5 * (1 + 4) + 0.5 * (4 + 4))
    energy.backward()
    assert torch.allclose(x.grad, (x - mu).detach())
    assert torch.allclose(mu.grad, (mu - x).detach())
    assert math.isclose(gaussian(x, mu, torch.tensor([1, 0])).item(), 2.5)  # the second row is padding


def test_softmax_kl_closed_form():
    x = torch.tensor([1.0, 0.0, -1.0], requires_grad=True)
    mu = torch.tensor([0.5, 0.5, 0.0], requires_grad=True)
    p = [math.exp(v) for v in (1.0, 0.0, -1.0)]
    p = [v / sum(p) for v in p]
    q = [math.exp(v) for v in (0.5, 0.5, 0.0)]
    q = [v / sum(q) for v in q]
    kl = sum(a * math.log(a / b) for a, b in zip(p, q))
    energy = softmax_kl(x, mu)
    assert math.isclose(energy.item(), kl, rel_tol=1e-5)
    energy.backward()
    # d KL / d x_i = p_i (log(p_i / q_i) - KL);  d KL / d mu = q - p
    expected_x = [a * (math.log(a / b) - kl) for a, b in zip(p, q)]
    assert torch.allclose(x.grad, torch.tensor(expected_x), atol=1e-6)
    assert torch.allclose(mu.grad, torch.tensor(q) - torch.tensor(p), atol=1e-6)


def test_softmax_kl_zero_at_equality_and_ignores_masked_entries():
    mu = torch.tensor([[0.3, -1e9, 1.0], [0.2, 0.1, -1e9]])
    assert softmax_kl(mu.clone(), mu).item() == 0.0
    x = mu.clone()
    x[0, 0] = 2.0
    rows = torch.tensor([0, 1])  # the first row is a padded query
    assert softmax_kl(x, mu, rows).item() == 0.0
    assert math.isfinite(softmax_kl(x, mu).item()) and softmax_kl(x, mu).item() > 0


def test_cross_entropy_sum_ignore_and_gradient():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]], requires_grad=True)
    targets = torch.tensor([0, 2, IGNORE_INDEX])
    expected = -math.log(math.exp(2) / (math.exp(2) + 2)) - math.log(1 / (math.e + 2))
    energy = cross_entropy(logits, targets)
    assert math.isclose(energy.item(), expected, rel_tol=1e-6)
    energy.backward()
    probs = logits.detach().softmax(-1)
    onehot = torch.zeros(3, 3)
    onehot[0, 0] = onehot[1, 2] = 1
    expected_grad = probs - onehot
    expected_grad[2] = 0  # ignored target
    assert torch.allclose(logits.grad, expected_grad, atol=1e-6)
