"""Generation with PCLMForCausalLM: KV cache, positions, left padding, SDPA, the checkpoint tokenizer.

Oracle: a small model trained here on a rule that a previous-token predictor cannot follow (each sequence repeats
its own three random tokens, so the next token is the one three back), and the model's own full-prefix forward
pass: greedy `generate` must equal the argmax loop over full prefixes, cached logits the uncached ones, a
left-padded row the same row alone."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache, pipeline

from pclm import PCLMConfig, PCLMForCausalLM
from pclm.models.hub import checkpoint_tokenizer
from pclm.pc import EnergyGraph, FeedForward, gaussian
from tests.conftest import tiny_lm

V, L, PERIOD = 16, 20, 3  # ids 0-4 are the special tokens, as in the repository tokenizer


def periodic(n: int, g: torch.Generator) -> torch.Tensor:
    """(n, L) sequences <s> a b c a b c ... with a, b, c drawn per row."""
    keys = torch.randint(5, V, (n, PERIOD), generator=g)
    body = keys.repeat(1, L // PERIOD + 1)[:, : L - 1]
    return torch.cat([torch.full((n, 1), 2), body], 1)


@pytest.fixture(scope="module")
def trained() -> PCLMForCausalLM:
    # Its own sizes, not the tiny model's: it must learn the rule in 300 steps (the first test checks that), and the
    # tests below run to its 32 positions.
    torch.manual_seed(0)
    config = PCLMConfig(
        vocab_size=V, hidden_size=32, intermediate_size=64, num_attention_heads=2, max_position_embeddings=32
    )
    model = PCLMForCausalLM(config)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        ids = periodic(32, g)
        loss = model(ids, labels=ids).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
    return model.eval()


def greedy_loop(model, ids: torch.Tensor, n: int) -> torch.Tensor:
    """n greedy tokens, each the argmax of a full forward pass over everything before it (no cache)."""
    with torch.no_grad():
        for _ in range(n):
            ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
    return ids


def test_the_trained_model_follows_the_rule(trained):
    ids = periodic(16, torch.Generator().manual_seed(1))
    with torch.no_grad():
        pred = trained(ids).logits.argmax(-1)
    assert torch.equal(pred[:, PERIOD:-1], ids[:, PERIOD + 1 :])  # every token after the first period


def test_greedy_generate_equals_the_full_prefix_loop(trained):
    ids = periodic(4, torch.Generator().manual_seed(2))[:, :5]  # <s> a b c a
    out = trained.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False, eos_token_id=None
    )
    assert torch.equal(out, greedy_loop(trained, ids, 12))
    assert torch.equal(out, periodic(4, torch.Generator().manual_seed(2))[:, :17])  # and it continues the rule


def test_cached_logits_equal_uncached(trained):
    ids = periodic(3, torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = trained(ids).logits
        out = trained(ids[:, :6], use_cache=True)
        cache, steps = out.cache, [out.logits]
        for t in range(6, L):
            out = trained(ids[:, t : t + 1], cache=cache)
            steps.append(out.logits)
    assert cache.get_seq_length() == L
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=1e-5)


def test_left_padded_batch_equals_each_row_alone(trained):
    rows = [periodic(1, torch.Generator().manual_seed(s))[:, :n] for s, n in [(4, 5), (5, 8), (6, 4)]]
    width = max(r.shape[1] for r in rows)
    batch = torch.zeros(len(rows), width, dtype=torch.long)  # <pad> = 0 on the left
    mask = torch.zeros_like(batch)
    for i, r in enumerate(rows):
        batch[i, width - r.shape[1] :], mask[i, width - r.shape[1] :] = r[0], 1
    out = trained.generate(batch, attention_mask=mask, max_new_tokens=9, do_sample=False, eos_token_id=None)
    with torch.no_grad():
        padded = trained(batch, attention_mask=mask).logits
    for i, r in enumerate(rows):
        alone = trained.generate(
            r, attention_mask=torch.ones_like(r), max_new_tokens=9, do_sample=False, eos_token_id=None
        )
        assert torch.equal(out[i, width - r.shape[1] :], alone[0])
        with torch.no_grad():  # and the forward pass itself: real positions count from 0 after the padding
            torch.testing.assert_close(padded[i, width - r.shape[1] :], trained(r).logits[0], rtol=0, atol=1e-5)


def test_explicit_position_ids_equal_positions_from_the_mask(trained):
    ids = periodic(2, torch.Generator().manual_seed(7))[:, :9]
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        a = trained(ids, attention_mask=mask).logits
        b = trained(ids, attention_mask=mask, position_ids=positions).logits
        c = trained(ids, attention_mask=mask, position_ids=positions + 1).logits
    assert torch.equal(a, b)
    assert (a - c).abs().amax() > 1e-2  # the positions are used


class ExplicitGraph(FeedForward):
    """A graph that cannot say which nodes it selects, so the model must call it at the scores (explicit path)."""

    def __call__(self, name, mu, mask=None):
        return mu


def test_sdpa_equals_the_hand_written_attention(trained, monkeypatch):
    """The default feedforward pass and BP's graph without value nodes take SDPA; a graph that may hold the scores
    takes the explicit softmax path. Same logits and same weight gradients, with left and right padding."""
    ids = periodic(3, torch.Generator().manual_seed(8))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    mask[2, -5:] = 0
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(
        torch.nn.functional, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k)
    )
    results = {}
    for name, nodes in [("default", None), ("bp", EnergyGraph(lambda name: None, 3)), ("explicit", ExplicitGraph())]:
        calls.clear()
        logits = trained(ids, attention_mask=mask, nodes=nodes).logits
        grads = torch.autograd.grad(logits[mask.bool()].square().mean(), list(trained.parameters()))
        results[name] = (logits.detach(), grads, len(calls))
    assert [results[k][2] for k in results] == [2, 2, 0]  # one SDPA call per block, none on the explicit path
    for name in ("default", "bp"):
        torch.testing.assert_close(results[name][0], results["explicit"][0], rtol=0, atol=1e-5)
        for x, y in zip(results[name][1], results["explicit"][1]):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_a_scores_value_node_takes_the_explicit_path(trained, monkeypatch):
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", None)  # any SDPA call would fail
    graph = EnergyGraph(lambda name: gaussian if name.endswith("scores") else None, 2)
    trained(periodic(2, torch.Generator().manual_seed(11)), nodes=graph)
    assert sorted(graph.x) == ["blocks.0.scores", "blocks.1.scores"]


def test_a_cache_is_refused_with_value_nodes(trained):
    ids = periodic(1, torch.Generator().manual_seed(9))
    with pytest.raises(ValueError, match="KV cache is for feedforward inference only"):
        trained(ids, cache=DynamicCache(config=trained.config), nodes=EnergyGraph(lambda name: None, 1))


def test_a_fixed_size_cache_is_refused_by_name(trained):
    ids = periodic(1, torch.Generator().manual_seed(9))[:, :4]
    with pytest.raises(ValueError, match=r"a fixed-size StaticCache \(cache_implementation='static'"):
        trained.generate(ids, max_new_tokens=2, do_sample=False, cache_implementation="static")
    out = trained.generate(ids, max_new_tokens=2, do_sample=False, cache_implementation="dynamic")
    assert torch.equal(out, trained.generate(ids, max_new_tokens=2, do_sample=False))


def test_generation_stops_at_the_positions_and_a_forward_past_them_is_a_clear_error(trained, caplog, monkeypatch):
    from transformers.utils import logging as hf_logging

    monkeypatch.setattr(hf_logging._get_library_root_logger(), "propagate", True)  # so that caplog sees its warnings
    ids = periodic(1, torch.Generator().manual_seed(10))  # 20 tokens; the 13th new token reads the last position
    out = trained.generate(ids, max_new_tokens=14, do_sample=False, eos_token_id=None)
    assert out.shape[1] == 32  # asked for 34 tokens: capped at max_position_embeddings
    import warnings

    with warnings.catch_warnings(record=True) as seen:  # a plain call: no "model-agnostic default max_length"
        warnings.simplefilter("always")
        out = trained.generate(ids, do_sample=False, eos_token_id=None)  # the default length stops there too
    assert out.shape[1] == 32
    assert not [w for w in seen if "max_length" in str(w.message)]
    assert "Both `max_new_tokens`" not in caplog.text  # the warning every call used to give
    trained.generation_config.max_length = 32  # what the generation config held before: the warning comes back
    trained.generate(ids, max_new_tokens=2, do_sample=False)
    trained.generation_config.max_length = None
    assert "Both `max_new_tokens` (=2) and `max_length`" in caplog.text
    with pytest.raises(ValueError, match="position 32 is past the model's max_position_embeddings=32"):
        trained(torch.cat([ids, ids], 1)[:, :33])


def test_checkpoint_tokenizer_prompts_end_without_eos(tokenizer):
    config = PCLMConfig(max_position_embeddings=48)
    causal = checkpoint_tokenizer(tokenizer, config, causal=True)
    assert causal("the cat").input_ids == tokenizer("the cat").input_ids[:-1]
    assert tokenizer("the cat").input_ids[-1] == tokenizer.eos_token_id  # the training tokenizer is unchanged
    assert causal.model_max_length == 48 and causal.padding_side == "left"
    masked = checkpoint_tokenizer(tokenizer, config, causal=False)
    assert masked("the cat").input_ids == tokenizer("the cat").input_ids and masked.model_max_length == 48


def tiny_pipeline(tokenizer):
    """The tests' tiny causal model over the tokenizer's vocabulary, with 24 positions (room for a prompt and a
    continuation), its checkpoint tokenizer and a text-generation pipeline of both."""
    model = tiny_lm("clm", vocab_size=len(tokenizer), max_position_embeddings=24).eval()
    causal = checkpoint_tokenizer(tokenizer, model.config, causal=True)
    return model, causal, pipeline("text-generation", model=model, tokenizer=causal)


def test_text_generation_pipeline_feeds_the_prompt_without_eos(tokenizer):
    model, causal, generator = tiny_pipeline(tokenizer)
    out = generator("the cat sat", max_new_tokens=4, do_sample=False, return_tensors=True)
    prompt = causal("the cat sat").input_ids
    assert prompt[0] == tokenizer.bos_token_id and prompt[-1] != tokenizer.eos_token_id
    ids = torch.tensor([prompt])
    assert out[0]["generated_token_ids"][: len(prompt) + 4] == greedy_loop(model, ids, 4)[0].tolist()


def test_text_generation_pipeline_defaults_stop_at_the_positions(tokenizer):
    # The pipeline's own default is 256 new tokens; the model's max_length (its positions) must win over it.
    model, causal, generator = tiny_pipeline(tokenizer)
    out = generator("the cat sat", do_sample=False, return_tensors=True, suppress_tokens=[tokenizer.eos_token_id])
    prompt = causal("the cat sat").input_ids
    ids = out[0]["generated_token_ids"]
    assert len(ids) == 24
    assert ids == greedy_loop(model, torch.tensor([prompt]), 24 - len(prompt))[0].tolist()


def test_pipeline_text_keeps_the_space_between_prompt_and_continuation(tokenizer):
    # The first new token is forced to start a word ("▁..."): the text must read prompt + " " + continuation, as
    # the whole sequence decodes; a subword continuation stays glued (the second case).
    model, causal, generator = tiny_pipeline(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    word_initial = {i for i, p in enumerate(pieces) if p.startswith("▁")}
    for allowed in (word_initial, set(range(5, len(tokenizer))) - word_initial):
        suppress = sorted(set(range(len(tokenizer))) - allowed)
        kwargs = {"max_new_tokens": 3, "do_sample": False, "begin_suppress_tokens": suppress}
        text = generator("the cat sat", **kwargs)[0]["generated_text"]
        ids = generator("the cat sat", return_tensors=True, **kwargs)[0]["generated_token_ids"]
        assert text == causal.decode(ids, skip_special_tokens=True)
        new = causal.decode(ids[len(causal("the cat sat").input_ids) :], skip_special_tokens=True)
        assert text == "the cat sat" + new
        assert text.startswith("the cat sat ") == (allowed is word_initial)
    batch = causal(["the cat sat", "a dog"], return_tensors="pt", padding=True)
    assert causal.batch_decode(batch.input_ids, skip_special_tokens=True) == ["the cat sat", "a dog"]


def test_checkpoint_tokenizer_files_hold_no_loading_options(tokenizer, tmp_path):
    import json

    checkpoint_tokenizer(tokenizer, PCLMConfig(), causal=True).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert "local_files_only" not in saved and "auto_map" not in saved
