"""Hugging Face conventions of the PCLM classes: the bare `PCLMModel` returns a `BaseModelOutput`, `return_dict` is
an argument (default `config.return_dict`), `attn_implementation` picks the attention kernel where the scores
are not a value node, and `_init_weights` (run by `post_init`) is where every weight gets its starting value.

Oracles: the definitions themselves (hidden states are the embedding sum and each block's output, attention
probabilities are softmax(q k^T / sqrt(d) + mask) rows that sum to 1, zero on padded or future keys), and the one
function computed two ways (eager and SDPA attention)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers.modeling_outputs import BaseModelOutput

from pclm import PCLMForCausalLM, PCLMForMaskedLM, PCLMModel
from pclm.models import PCLMPreTrainedModel
from pclm.pc import FeedForward
from tests.conftest import tiny_config
from tests.models.test_models import V, random_ids, random_model


def _mask() -> torch.Tensor:
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0  # the second sentence is padded
    return mask


def test_a_bare_model_builds_from_a_fresh_config():
    config = tiny_config()
    out = PCLMModel(config)(torch.tensor([[1, 2, 3]]))
    assert isinstance(out, BaseModelOutput) and out.last_hidden_state.shape == (1, 3, config.hidden_size)
    assert out.hidden_states is None and out.attentions is None


@pytest.mark.parametrize("decoder", [False, True])
def test_hidden_states_and_attentions_when_asked(decoder):
    torch.manual_seed(0)
    model = PCLMModel(tiny_config(vocab_size=V, num_hidden_layers=2, is_decoder=decoder)).eval()
    ids, mask = random_ids(2, 7), _mask()
    with torch.no_grad():
        out = model(ids, mask, output_hidden_states=True, output_attentions=True)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # right padding repeats the last position
        embedded = model.embed_norm(model.word_embeddings(ids) + model.position_embeddings(positions))
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    torch.testing.assert_close(out.hidden_states[0], embedded)
    assert out.hidden_states[-1] is out.last_hidden_state
    with torch.no_grad():  # block 1 applied to block 0's output gives the last hidden state
        bias = torch.zeros(2, 1, 7, 7).masked_fill(out.attentions[0][:, :1] == 0, -1e9)
        again = model.blocks[1](out.hidden_states[1], bias, mask, FeedForward(), "blocks.1")
    torch.testing.assert_close(again, out.last_hidden_state)
    # block 0's probabilities by hand: softmax(q k^T / sqrt(d) + mask), per head of d = hidden / heads
    heads = model.config.num_attention_heads
    assert heads > 1  # the split into heads is part of what is checked
    d = model.config.hidden_size // heads
    att = model.blocks[0].attention
    q = att.query(embedded).view(2, 7, heads, d).transpose(1, 2)
    k = att.key(embedded).view(2, 7, heads, d).transpose(1, 2)
    keep = mask[:, None, None, :].bool() & (torch.ones(7, 7).tril().bool() if decoder else True)
    expected = (q @ k.transpose(-1, -2) / math.sqrt(d)).masked_fill(~keep, -math.inf).softmax(-1)
    torch.testing.assert_close(out.attentions[0], expected.detach())
    torch.testing.assert_close(out.attentions[1].sum(-1), torch.ones(2, heads, 7))


def test_return_dict_false_gives_the_tuple_of_the_fields_set():
    model = random_model(PCLMModel)
    ids = random_ids(2, 5)
    with torch.no_grad():
        full = model(ids, output_hidden_states=True)
        plain = model(ids, return_dict=False)
        both = model(ids, output_hidden_states=True, output_attentions=True, return_dict=False)
    assert isinstance(plain, tuple) and len(plain) == 1 and torch.equal(plain[0], full.last_hidden_state)
    assert len(both) == 3 and len(both[1]) == 3 and len(both[2]) == 2


@pytest.mark.parametrize("cls", [PCLMModel, PCLMForMaskedLM, PCLMForCausalLM])
def test_config_return_dict_false_is_the_default_of_every_class(cls):
    model = random_model(cls, return_dict=False)
    with torch.no_grad():
        out = model(random_ids(2, 5))
    assert isinstance(out, tuple)
    with torch.no_grad():
        assert not isinstance(model(random_ids(2, 5), return_dict=True), tuple)


# --- attn_implementation -----------------------------------------------------------------------------------------
def test_sdpa_is_the_default_and_eager_can_be_asked_for():
    assert random_model(PCLMForMaskedLM).config._attn_implementation == "sdpa"
    eager = PCLMForMaskedLM._from_config(tiny_config(), attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    assert eager.pclm.blocks[0].attention.config._attn_implementation == "eager"


@pytest.mark.parametrize("cls", [PCLMForMaskedLM, PCLMForCausalLM])
def test_eager_and_sdpa_give_the_same_logits_and_bp_gradients(cls, monkeypatch):
    sdpa = random_model(cls)
    eager = random_model(cls)
    eager.config._attn_implementation = "eager"
    ids, mask = random_ids(2, 7), _mask()
    labels = ids.masked_fill(mask == 0, -100)

    def run(model):
        model.zero_grad()
        out = model(ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        return out.logits.detach(), {n: p.grad for n, p in model.named_parameters()}

    expected, expected_grads = run(sdpa)
    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    logits, grads = run(eager)
    assert calls == []  # eager never calls the fused kernel
    run(sdpa)
    assert calls  # the default does
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=1e-5, msg=name)


# --- _init_weights -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [PCLMModel, PCLMForMaskedLM, PCLMForCausalLM])
def test_every_weight_is_initialised_by_init_weights_through_post_init(cls, monkeypatch):
    """`_init_weights` is the one place weights get their starting values: replaced by one that writes 0.5, every
    parameter of a new model holds 0.5."""

    def mark(self, module):
        for p in module.parameters(recurse=False):
            torch.nn.init.constant_(p, 0.5)

    monkeypatch.setattr(PCLMPreTrainedModel, "_init_weights", mark)
    model = cls(tiny_config())
    assert all(torch.all(p == 0.5) for p in model.parameters())


def test_the_heads_path_ignores_the_configs_output_flags(monkeypatch):
    """An LM's config asking for attentions or hidden states changes nothing of its forward: the head reads the
    trunk's last hidden states, and attention stays on SDPA (the probabilities would force the explicit scores)."""
    flagged = random_model(PCLMForMaskedLM, output_attentions=True, output_hidden_states=True)
    plain = random_model(PCLMForMaskedLM)
    ids = random_ids(2, 5)
    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        logits = flagged(ids).logits
    assert len(calls) == flagged.config.num_hidden_layers
    with torch.no_grad():
        assert torch.equal(logits, plain(ids).logits)
