"""The reference-faithful settings (issue 25), each checked against an oracle that fails when the setting is ignored:
`init` against the distributions it names, `hidden_act` against the head written out by hand, the pre-activation and
head value nodes against which weights the output error reaches at t = 0, and the reach rule against their depth."""

from __future__ import annotations

import math

import pytest
import torch

from pclm import PCLMConfig, PCLMForCausalLM, PCLMForMaskedLM
from pclm.models.value_nodes import error_depth, value_node_selector
from pclm.pc import EnergyGraph, FeedForward
from tests.conftest import tiny_config

from .test_models import random_model
from .test_target_rows import _batch


@pytest.mark.parametrize("cls", [PCLMForMaskedLM, PCLMForCausalLM])
def test_torch_init_gives_pytorch_defaults_and_bert_init_gives_n_0_002(cls):
    torch.manual_seed(0)
    bert = cls(PCLMConfig(init="bert"))
    torch_init = cls(PCLMConfig(init="torch"))
    emb = torch_init.pclm.word_embeddings.weight
    assert abs(emb.std().item() - 1.0) < 0.01  # nn.Embedding: N(0, 1)
    assert abs(bert.pclm.word_embeddings.weight.std().item() - 0.02) < 0.001
    dense = torch_init.pclm.blocks[0].intermediate  # nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias too
    bound = 1 / math.sqrt(dense.in_features)
    assert dense.weight.abs().max() <= bound and dense.weight.abs().max() > 0.95 * bound
    assert abs(dense.weight.std().item() - bound / math.sqrt(3)) < 0.02 * bound
    assert dense.bias.abs().max() > 0.5 * bound  # BERT's biases are zero
    assert torch.all(bert.pclm.blocks[0].intermediate.bias == 0)


def test_init_survives_a_save_and_load(tmp_path):
    model = PCLMForCausalLM(PCLMConfig(init="torch", hidden_act="tanh"))
    model.save_pretrained(tmp_path)
    loaded = PCLMForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.init == "torch" and loaded.config.hidden_act == "tanh"
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("bad", [{"init": "xavier"}, {"hidden_act": "relu"}])
def test_unknown_init_or_activation_is_refused(bad):
    with pytest.raises(ValueError, match="must be one of"):
        PCLMConfig(**bad)


@pytest.mark.parametrize("act, fn", [("tanh", torch.tanh), ("gelu", torch.nn.functional.gelu)])
def test_hidden_act_is_the_head_and_feed_forward_activation(act, fn):
    model = random_model(PCLMForCausalLM, hidden_act=act)
    h = torch.randn(4, model.config.hidden_size)
    head = model.lm_head
    torch.testing.assert_close(head.transform(h), head.norm(fn(head.dense(h))))
    block, nodes = model.pclm.blocks[0], FeedForward()
    h = torch.randn(2, 3, model.config.hidden_size)
    bias, mask = torch.zeros(2, 1, 3, 3), torch.ones(2, 3)
    a = block.attn_norm(h + block.attention(h, bias, nodes, "blocks.0", mask[:, None, :]))
    expected = block.out_norm(a + block.ffn_out(fn(block.intermediate(a))))  # the feed-forward, by hand
    torch.testing.assert_close(block(h, bias, mask, nodes, "blocks.0"), expected)


def test_tanh_and_gelu_networks_with_the_same_weights_differ():
    gelu = random_model(PCLMForCausalLM, hidden_act="gelu")
    tanh = random_model(PCLMForCausalLM, hidden_act="tanh")
    tanh.load_state_dict(gelu.state_dict())
    ids = torch.randint(5, 100, (2, 6))
    with torch.no_grad():
        assert not torch.allclose(gelu(ids).logits, tanh(ids).logits, atol=1e-3)


def _grads_at_t0(cls, value_nodes: str) -> tuple[dict[str, torch.Tensor | None], EnergyGraph]:
    """Every weight's dF/dθ right after feedforward initialisation (t = 0), value nodes at `value_nodes`."""
    # Width 32, not the tiny model's 16: pre-activations of the N(0, 0.3) weights then have std 0.3 sqrt(32) ~ 1.7,
    # well past tanh's range, which test_pre_activation_node_holds_the_pre_activation relies on.
    model = random_model(cls, num_hidden_layers=2, hidden_act="tanh", hidden_size=32, intermediate_size=64)
    ids, mask, labels, _ = _batch(cls)
    graph = EnergyGraph(value_node_selector(value_nodes), ids.shape[0])
    model(ids, attention_mask=mask, labels=labels, nodes=graph)
    graph.energy().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    return {n: (None if g is None or not g.abs().sum() else g) for n, g in grads.items()}, graph


@pytest.mark.parametrize("cls", [PCLMForMaskedLM, PCLMForCausalLM])
def test_pre_activation_nodes_stop_the_output_error_at_t0(cls):
    none, _ = _grads_at_t0(cls, "none")
    assert none["lm_head.dense.weight"] is not None and none["pclm.blocks.1.intermediate.weight"] is not None
    head, graph = _grads_at_t0(cls, "head_pre")
    # the head's dense layer lies below its value node: no error reaches it before the node moves
    assert head["lm_head.dense.weight"] is None and head["lm_head.decoder.weight"] is not None
    assert head["pclm.blocks.1.intermediate.weight"] is None
    assert "lm_head.head_pre" in graph.x
    ffn, graph = _grads_at_t0(cls, "ffn_pre")
    assert ffn["lm_head.dense.weight"] is not None and ffn["pclm.blocks.1.ffn_out.weight"] is not None
    # below block 1's pre-activation node (the attention sublayer still gets the error through the residual)
    assert ffn["pclm.blocks.1.intermediate.weight"] is None


def test_pre_activation_node_holds_the_pre_activation():
    _, pre = _grads_at_t0(PCLMForCausalLM, "ffn_pre+head_pre")
    _, post = _grads_at_t0(PCLMForCausalLM, "ffn+head")
    # tanh bounds the post-activation values to [-1, 1]; the pre-activations of these large random weights are not
    assert pre.x["blocks.0.ffn_pre"].abs().max() > 1.5 and post.x["blocks.0.ffn"].abs().max() <= 1
    assert pre.x["lm_head.head_pre"].abs().max() > 1.5 and post.x["lm_head.head"].abs().max() <= 1


@pytest.mark.parametrize(
    "spec, depth",
    [("out+scores", 3), ("scores+ffn_pre+head_pre", 4), ("ffn_pre", 2), ("head_pre", 1), ("head_pre+head", 2)],
)
def test_error_depth_counts_block_and_head_nodes(spec, depth):
    assert error_depth(spec, 2) == depth


def test_tiny_config_still_builds():
    assert tiny_config(init="torch").init == "torch"
