"""The local `evaluate` perplexity metric against closed forms, loaded with the network blocked, and `evaluate_lm`
on a model whose uniform logits make the perplexity exactly the vocabulary size."""

from __future__ import annotations

import math
import socket
from types import SimpleNamespace

import pytest
import torch

from pclm.evaluation import load_perplexity


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access while loading a local metric")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_perplexity_closed_form(no_network):
    metric = load_perplexity()
    nll_sum, count = [2.0, 4.0, 0.5, 0.0], [1, 2, 1, 0]  # total NLL 6.5 over 4 targets
    assert metric.compute(nll_sum=nll_sum, count=count) == {
        "perplexity": math.exp(6.5 / 4),
        "nll": 6.5 / 4,
        "targets": 4,
    }
    metric.add_batch(nll_sum=nll_sum[:1], count=count[:1])  # batches add up to the corpus, not a mean of batches
    metric.add_batch(nll_sum=nll_sum[1:], count=count[1:])
    assert metric.compute() == {"perplexity": math.exp(6.5 / 4), "nll": 6.5 / 4, "targets": 4}
    empty = metric.compute(nll_sum=[], count=[])
    assert math.isnan(empty["perplexity"]) and empty["targets"] == 0


def test_evaluate_lm_uniform_logits_give_the_vocabulary_size():
    from accelerate import Accelerator

    from pclm.training.lm import evaluate_lm

    V = 7

    def model(input_ids, labels):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, V))  # (B, T, V): every token has p = 1/V

    labels = torch.tensor([[1, 2, 3, -100], [4, 5, -100, -100]])
    batches = [{"input_ids": labels.clamp(min=0), "labels": labels}] * 3
    out = evaluate_lm(model, batches, Accelerator(cpu=True), causal=True)
    # Causal: position t predicts token t + 1, so 2 + 1 targets per batch.
    assert out["targets"] == 9
    assert math.isclose(out["ppl"], V, rel_tol=1e-6) and math.isclose(out["nll"], math.log(V), rel_tol=1e-6)


def test_evaluate_lm_scores_both_counts_of_end_of_sentence():
    from accelerate import Accelerator

    from pclm.training.lm import evaluate_lm

    V, EOS = 7, 3

    def model(input_ids, labels):  # every position puts probability 1/2 on </s>, 1/12 on each other token
        logits = torch.zeros(*input_ids.shape, V)
        logits[..., EOS] = math.log(6.0)
        return SimpleNamespace(logits=logits)

    labels = torch.tensor([[2, 5, 6, EOS], [2, 4, EOS, -100]])
    batches = [{"input_ids": labels.clamp(min=0), "labels": labels}]
    both = evaluate_lm(model, batches, Accelerator(cpu=True), causal=True, eos_id=EOS, count_eos=True)
    # targets: 5, 6, </s>, 4, </s>: NLL 3 x log 12 + 2 x log 2 with </s>, 3 x log 12 without
    assert math.isclose(both["ppl_eos_in"], math.exp((3 * math.log(12) + 2 * math.log(2)) / 5), rel_tol=1e-6)
    assert math.isclose(both["ppl_eos_out"], 12.0, rel_tol=1e-6)
    assert both["ppl"] == both["ppl_eos_in"] and both["targets"] == 5
    out = evaluate_lm(model, batches, Accelerator(cpu=True), causal=True, eos_id=EOS, count_eos=False)
    assert out["ppl"] == out["ppl_eos_out"] and out["targets"] == 3


def test_unigram_baseline_closed_form():
    from pclm.evaluation.baselines import unigram_log_probs, unigram_perplexity

    # counts 1 + train counts, <s> (first token) not counted: token 0 -> 1, 1 -> 1 + 2, 2 -> 1 + 1; total 6
    log_probs = unigram_log_probs([[0, 1, 1], [0, 2]], vocab_size=3)
    assert torch.allclose(torch.from_numpy(log_probs).exp(), torch.tensor([1 / 6, 3 / 6, 2 / 6], dtype=torch.float64))
    # conditional LM: every next token (1 and 2); masked LM: the labelled positions only (token 1)
    assert math.isclose(unigram_perplexity(log_probs, [{"input_ids": [0, 1, 2]}], "clm"), math.sqrt(2 * 3))
    assert math.isclose(unigram_perplexity(log_probs, [{"input_ids": [0, 5, 5], "labels": [-100, 1, -100]}], "mlm"), 2)
    assert math.isnan(unigram_perplexity(log_probs, [{"input_ids": [0]}], "clm"))  # no targets


def test_unigram_baseline_refuses_a_json_it_cannot_write_before_reading_data(tmp_path, capsys, monkeypatch):
    import pclm.config
    from pclm.cli import unigram_baseline

    (tmp_path / "afile").write_text("")
    monkeypatch.setattr(pclm.config, "load_config", lambda *a, **k: pytest.fail("read data before the check"))
    assert unigram_baseline.main(["--json", str(tmp_path / "afile" / "u.json")]) == 2
    assert capsys.readouterr().err == f"error: cannot create the folder of --json '{tmp_path / 'afile'}': File exists\n"
