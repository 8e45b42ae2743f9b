"""Layer-parallel execution of the vision MLP: every hidden layer's matmul issued at once, as one batched matmul.

iPC's inference and learning steps only ever read value nodes and errors that already exist, so the matmuls of
all layers are independent (SPEC.md section 3: 2 SMMs per weight update, whatever the depth). PyTorch runs a Python
loop over layers one after another; `StackedMLP` removes the loop for chains of equal width:

    x_0 = image (clamped)                                   input layer:   mu_1 = act(W_1 x_0 + b_1)       nn.Linear
    x = [x_1; ...; x_{D-1}]   one value node, (D-1, B, W)   hidden layers: mu_{l+1} = act(W_{l+1} x_l + b_{l+1}),
                                                            l = 1 .. D-2, ONE torch.baddbmm over the (D-2, W, W) stack
    logits = W_D x_{D-1} + b_D, clamped to the label        output layer:                                   nn.Linear

The energy graph holds the stacked x as one Gaussian node ("hidden"), so `train_batch` runs it unchanged with any
value-node schedule, and autograd's backward of that single node energy produces every layer's error propagation
(x-gradients) and weight gradients as batched matmuls too. The model is the same function of the same parameters as
`pclm.vision.MLP` (`from_mlp` / `to_mlp` convert), and the energy is the sum of the same per-layer Gaussian
energies, so iPC, PC and BP give the same updates as the sequential MLP.

Only predictions from existing value nodes are batched. The feedforward pass (evaluation, BP, and the first pass of
every batch, which initialises the value nodes) is sequential by nature and loops over the stack.
There is no `pc_layers()`: the hidden layers are one parameter, so per-layer weight groups (Z-IL) are not available.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..pc import FeedForward
from .chain import activation
from .mlp import MLP, VisionOutput

__all__ = ["StackedMLP"]

_FEEDFORWARD = FeedForward()
NODE = "hidden"


def _will_compute(node) -> bool:
    """Whether the running backward will deliver a gradient to `node` (False for the weights when `train_batch`
    backpropagates to the value nodes only, as PC's inference steps do). True when it cannot tell."""
    will = getattr(torch._C, "_will_engine_execute_node", None)
    if node is None or will is None:
        return True
    try:
        return bool(will(node))
    except RuntimeError:  # not inside the autograd engine
        return True


class _StackedAffine(torch.autograd.Function):
    """bias + x @ weight_t for every layer at once, (L, B, W_in) x (L, W_in, W_out) -> (L, B, W_out): baddbmm,
    with a hand-written backward. Autograd's own BaddbmmBackward computes dF/dweight_t as the bmm x^T @ g, which
    for one sample (a batch of L outer products, inner dimension 1) the CPU bmm runs several times slower than the
    broadcast product x^T * g, the same values (one product per entry, no sum). Like the built-in backward, it
    skips the gradients that the running backward does not ask for."""

    @staticmethod
    def forward(bias: torch.Tensor, x: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(bias.unsqueeze(1), x, weight_t)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        bias, x, weight_t = inputs
        ctx.save_for_backward(x, weight_t)
        # the weight's gradient node, to skip the (L, W, W) product in value-only backwards (the bias gradient is
        # a cheap sum: computed whenever bias requires grad, as looking its node up costs more than the sum)
        ctx.weight_node = torch.autograd.graph.get_gradient_edge(weight_t).node if weight_t.requires_grad else None

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight_t = ctx.saved_tensors
        need_b, need_x, need_w = ctx.needs_input_grad
        grad = grad.to(weight_t.dtype)  # under autocast the output (and its gradient) may be in lower precision
        d_bias = grad.sum(1) if need_b else None
        d_x = torch.bmm(grad, weight_t.transpose(1, 2)).to(x.dtype) if need_x else None  # (L, B, W_in)
        d_w = None
        if need_w and _will_compute(ctx.weight_node):
            x_t = x.to(weight_t.dtype).transpose(1, 2)  # (L, W_in, B)
            d_w = x_t * grad if x.shape[1] == 1 else torch.bmm(x_t, grad)  # (L, W_in, W_out), the weight's layout
        return d_bias, d_x, d_w


class StackedMLP(nn.Module):
    """The MLP of `pclm.vision.MLP` (`depth` weight layers, `width` hidden units) with its D - 2 hidden-to-hidden
    layers stacked into one (D-2, W, W) weight and its D - 1 hidden value nodes into one (D-1, B, W) node."""

    def __init__(
        self, in_features: int = 784, width: int = 64, depth: int = 3, classes: int = 10, act: str = "tanh"
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError("StackedMLP needs depth >= 2 (at least one hidden value node)")
        self.act_name, self.act = act, activation(act)
        self.inp = nn.Linear(in_features, width)
        # (D-2, W_in, W_out): nn.Linear's weight TRANSPOSED, so that x @ weight_t is a plain bmm whose weight
        # gradient x^T @ grad comes out in the parameter's own layout (see `predict_hidden`)
        self.weight_t = nn.Parameter(torch.empty(depth - 2, width, width))
        self.bias = nn.Parameter(torch.empty(depth - 2, width))  # (D-2, W)
        self.out = nn.Linear(width, classes)
        with torch.no_grad():  # nn.Linear's default initialisation, layer by layer
            for w, b in zip(self.weight_t, self.bias):
                nn.init.kaiming_uniform_(w.T, a=math.sqrt(5))  # fan_in of the (W_out, W_in) view, as nn.Linear
                nn.init.uniform_(b, -1 / math.sqrt(width), 1 / math.sqrt(width))

    @property
    def depth(self) -> int:
        return self.weight_t.shape[0] + 2

    # ------------------------------------------------------------------------------------------------- conversion
    @classmethod
    def from_mlp(cls, mlp: MLP) -> StackedMLP:
        """A StackedMLP holding copies of `mlp`'s parameters (all hidden layers must have the same width)."""
        layers = list(mlp.layers)
        if len(layers) < 2:
            raise ValueError("from_mlp needs an MLP with depth >= 2")
        model = cls(layers[0].in_features, layers[0].out_features, len(layers), layers[-1].out_features, mlp.act_name)
        with torch.no_grad():
            model.inp.load_state_dict(layers[0].state_dict())
            model.out.load_state_dict(layers[-1].state_dict())
            for i, layer in enumerate(layers[1:-1]):
                model.weight_t[i].copy_(layer.weight.T)
                model.bias[i].copy_(layer.bias)
        return model.to(layers[0].weight.device, layers[0].weight.dtype)

    def to_mlp(self) -> MLP:
        """A sequential `MLP` holding copies of these parameters."""
        mlp = MLP(self.inp.in_features, self.inp.out_features, self.depth, self.out.out_features, self.act_name)
        with torch.no_grad():
            mlp.layers[0].load_state_dict(self.inp.state_dict())
            mlp.layers[-1].load_state_dict(self.out.state_dict())
            for i, layer in enumerate(mlp.layers[1:-1]):
                layer.weight.copy_(self.weight_t[i].T)
                layer.bias.copy_(self.bias[i])
        return mlp.to(self.weight_t.device, self.weight_t.dtype)

    # ---------------------------------------------------------------------------------------------------- forward
    def feedforward_hidden(self, x0: torch.Tensor) -> torch.Tensor:
        """The D - 1 hidden activations of a feedforward pass, layer after layer. x0: (B, D_in) -> (D-1, B, W)."""
        h = [self.act(self.inp(x0))]
        for w_t, b in zip(self.weight_t, self.bias):
            h.append(self.act(torch.addmm(b, h[-1], w_t)))
        return torch.stack(h)

    def predict_hidden(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """All hidden predictions from the value nodes at once. x0: (B, D_in), x: (D-1, B, W) -> mu: (D-1, B, W)."""
        first = self.act(self.inp(x0)).unsqueeze(0)  # (1, B, W)
        if self.weight_t.shape[0] == 0:
            return first
        # mu_{l+1} = act(x_l W_{l+1}^T + b_{l+1}) for every hidden-to-hidden layer in one batched matmul.
        # Layout matters (2-core CPU, 32 x 1024, batch 1): with the weight stored (W_out, W_in) and passed as a
        # transposed view, baddbmm's backward returns dF/dW^T and AccumulateGrad copies it into the parameter's
        # layout: a strided copy of the whole (D-2, W, W) gradient that cost more than the rest of the step.
        # Computing mu^T = W x^T instead makes the x-gradient a bmm with a transposed (W, W) operand and one
        # column, which the CPU kernels run 10x slower. Storing W^T gives fast kernels throughout: forward x @ W^T,
        # dF/dx = g @ (W^T)^T and dF/dW^T = x^T g (a broadcast product at batch 1, see `_StackedAffine`), the last
        # already contiguous in the parameter's layout.
        if (
            torch.compiler.is_compiling()
        ):  # traced (train.backend=compiled): the built-in op; the compiler plans its backward
            affine = torch.baddbmm(self.bias.unsqueeze(1), x[:-1], self.weight_t)
        else:
            affine = _StackedAffine.apply(self.bias, x[:-1], self.weight_t)
        rest = self.act(affine)  # (D-2, B, W)
        return torch.cat([first, rest])

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, nodes=None) -> VisionOutput:
        nodes = nodes or _FEEDFORWARD
        x0 = pixel_values.flatten(1)  # (B, D_in)
        x = getattr(nodes, "x", {}).get(NODE)  # the graph's stacked value node, once it exists
        mu = self.feedforward_hidden(x0) if x is None else self.predict_hidden(x0, x)  # (D-1, B, W)
        h = nodes(NODE, mu)  # x (a value node) or mu (no value node)
        logits = self.out(h[-1])  # (B, classes)
        loss = None if labels is None else nodes.clamp_output(logits, labels)
        return VisionOutput(logits=logits, loss=loss)
