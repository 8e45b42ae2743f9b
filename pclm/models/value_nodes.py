"""Which positions of a PCLM are value nodes: the `pc.value_nodes` config field.

The field is a "+"-joined list of node kinds (each kind is placed in every block):
    scores   attention scores before the softmax, a softmax-KL node (the paper's "vec." modification)
    attn     attention sublayer output (after residual and layer norm)
    ffn_pre  feed-forward hidden pre-activation (the reference PC transformer's "before" placement)
    ffn      feed-forward hidden activation
    out      block output
and, once for the model, in the prediction head:
    head_pre the head's dense pre-activation
    head     the head's activation
and two presets: "blocks" = "out", "sublayers" = "attn+ffn+out". Examples: "out+scores" (the default),
"sublayers+scores", "none" (only the output node: the energy is then the BP loss), "scores+ffn_pre+head_pre" (the
reference code's placement: the softmax-KL node on the scores, Gaussian nodes on the pre-activations).

Depth matters. After feedforward initialisation only the output is wrong, and each inference step carries the
error one value node further down. With D value nodes on the longest chain, the weights feeding the lowest node
(the embeddings, or block 0's query/key weights when scores are nodes) first get a gradient at step t = D. So iPC
needs T >= D + 1 and PC needs T >= D; `error_depth` gives D.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UsageError
from ..pc import EnergyFn, gaussian, softmax_kl

__all__ = ["NODE_KINDS", "BLOCK_KINDS", "HEAD_KINDS", "parse_value_nodes", "value_node_selector", "error_depth"]

BLOCK_KINDS = ("scores", "attn", "ffn_pre", "ffn", "out")
HEAD_KINDS = ("head_pre", "head")
NODE_KINDS = BLOCK_KINDS + HEAD_KINDS
_PRESETS = {"blocks": ("out",), "sublayers": ("attn", "ffn", "out"), "none": ()}


def parse_value_nodes(spec: str) -> frozenset[str]:
    kinds: set[str] = set()
    for token in str(spec).split("+"):
        token = token.strip()
        if token in _PRESETS:
            kinds.update(_PRESETS[token])
        elif token in NODE_KINDS:
            kinds.add(token)
        else:
            raise UsageError(
                f"unknown value-node kind '{token}' in pc.value_nodes='{spec}' "
                f"(use {', '.join(NODE_KINDS)}, blocks, sublayers or none, joined by '+')"
            )
    return frozenset(kinds)


def value_node_selector(spec: str) -> Callable[[str], EnergyFn | None]:
    """Map a node name such as "blocks.1.scores" to its energy, or None when it is not a value node."""
    kinds = parse_value_nodes(spec)

    def select(name: str) -> EnergyFn | None:
        kind = name.rsplit(".", 1)[-1]
        if kind not in kinds:
            return None
        return softmax_kl if kind == "scores" else gaussian

    return select


def error_depth(spec: str, num_layers: int) -> int:
    """D: value nodes on the longest chain from the output down to the lowest weights."""
    kinds = parse_value_nodes(spec)
    return num_layers * len(kinds - {"scores", *HEAD_KINDS}) + ("scores" in kinds) + len(kinds & set(HEAD_KINDS))
