"""The Python API (`pclm.train`, `pclm.evaluate`): the same updates as `train_batch` called by hand on the same
batches, for every algorithm and both tasks; a custom module that calls `nodes(...)` trains; the scores are the
CLI's; bad arguments are one-line `UsageError`s."""

from __future__ import annotations

import copy
import subprocess
import sys
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from datasets import Dataset  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import pclm  # noqa: E402
from pclm.algorithms import build_algorithm  # noqa: E402
from pclm.config import TrainConfig  # noqa: E402
from pclm.data.collate import train_collator  # noqa: E402
from pclm.errors import UsageError  # noqa: E402
from pclm.models.value_nodes import value_node_selector  # noqa: E402
from pclm.pc import FeedForward, gaussian  # noqa: E402
from pclm.training.backends import Autograd  # noqa: E402
from pclm.training.lm import mlm_masker  # noqa: E402
from pclm.training.step import train_batch, weight_groups  # noqa: E402
from tests.conftest import REPO, tiny_lm  # noqa: E402

T = 5  # inference steps (not the default 4): iPC reaches T - 1 >= 3 value nodes, "out+scores" on 2 blocks
GAMMA = 0.3  # inference_lr, not the default
VOCAB = 8001  # the repository tokenizer's, which tokenises the sentences below
NOUNS = ["cat", "dog", "man", "car", "house", "tree", "bird", "fish"]


@pytest.fixture(scope="module")
def sentences(tokenizer) -> Dataset:
    """40 short sentences tokenised by pclm's tokenizer (`<s> ... </s>`), with the tokenizer's extra columns."""
    text = [f"the {a} saw the {b} ." for a in NOUNS for b in NOUNS[:5]]
    return Dataset.from_dict({"text": text}).map(lambda b: tokenizer(b["text"]), batched=True)


def by_hand(model, dataset: Dataset, tokenizer, algo: str, lr: float, batch_size: int, transform=None) -> int:
    """The oracle: `train_batch` on the batches of `dataset` in order, AdamW as `pclm.train` builds it by default
    (BP: BERT's no-decay group, biases and layer-norm weights by name; PC / iPC: one weight decay for all).
    Returns the number of batches."""
    groups = weight_groups(model)
    if algo == "bp":
        undecayed = [n.endswith(".bias") or "norm." in n for n, _ in model.named_parameters()]
        params = [p for _, p in model.named_parameters()]
        groups = [
            {"params": [p for p, no in zip(params, undecayed) if not no]},
            {"params": [p for p, no in zip(params, undecayed) if no], "weight_decay": 0.0},
        ]
    optim = torch.optim.AdamW(groups, lr=lr, weight_decay=TrainConfig.weight_decay, betas=TrainConfig.betas)
    loader = DataLoader(
        dataset.with_format(columns=["input_ids"]),
        batch_size=batch_size,
        collate_fn=train_collator("clm", tokenizer),
        generator=torch.Generator(),
    )  # not the global RNG
    n = 0
    for batch in loader:
        batch = transform(batch) if transform is not None else batch
        train_batch(model, batch, build_algorithm(algo, T, GAMMA), optim, Autograd(value_node_selector("out+scores")))
        n += 1
    return n


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("algo", ["bp", "pc", "ipc"])
def test_train_is_train_batch_on_the_same_batches(algo, sentences, tokenizer, one_thread):
    model = tiny_lm("clm", vocab_size=VOCAB)
    start, oracle = copy.deepcopy(model), copy.deepcopy(model)
    before = pclm.evaluate(model, sentences)
    result = pclm.train(
        model,
        sentences,
        algorithm=algo,
        inference_steps=T,
        inference_lr=GAMMA,
        lr=1e-2,
        batch_size=8,
        shuffle=False,
        epochs=1,
        eval_dataset=sentences,
    )
    batches = by_hand(oracle, sentences, tokenizer, algo, lr=1e-2, batch_size=8)
    assert result.model is model and result.status == "completed" and result.steps == batches == 5
    assert_same_weights(model, oracle)
    assert not torch.equal(model.lm_head.decoder.weight, start.lm_head.decoder.weight)
    # the loop's scores are `pclm.evaluate`'s, and training lowered them
    after = pclm.evaluate(model, sentences)
    assert result.init_dev_ppl == before["ppl"] and result.history[-1]["dev_ppl"] == after["ppl"]
    assert after["ppl"] < before["ppl"] / 2
    assert after["targets"] == before["targets"] == sum(len(ids) - 1 for ids in sentences["input_ids"])


@pytest.mark.parametrize("algo, updates_per_batch", [("bp", 1), ("pc", 1), ("ipc", T)])
def test_weights_step_as_the_schedule_says(algo, updates_per_batch, sentences, one_thread):
    """iPC updates the weights at each of its T evaluations, PC once after its T inference steps, BP once."""
    model = tiny_lm("clm", vocab_size=VOCAB)
    optim = torch.optim.SGD(weight_groups(model), lr=0.0)  # lr 0: count the steps, move nothing
    steps: list[int] = []
    optim.register_step_post_hook(lambda *_: steps.append(1))
    result = pclm.train(model, sentences, algorithm=algo, inference_steps=T, batch_size=8, optimizer=optim, epochs=2)
    assert result.steps == 10 and len(steps) == 10 * updates_per_batch


def test_masked_lm_is_train_batch_with_the_cli_masking(sentences, tokenizer, one_thread):
    model = tiny_lm("mlm", vocab_size=VOCAB)
    oracle = copy.deepcopy(model)
    result = pclm.train(
        model,
        sentences,
        algorithm="ipc",
        inference_steps=T,
        inference_lr=GAMMA,
        lr=1e-2,
        batch_size=8,
        shuffle=False,
        seed=5,
    )
    torch.manual_seed(5)  # pclm.train seeds the masking with `seed`
    by_hand(oracle, sentences, tokenizer, "ipc", lr=1e-2, batch_size=8, transform=mlm_masker(tokenizer, 0.15))
    assert result.steps == 5
    assert_same_weights(model, oracle)


class Bigram(nn.Module):
    """Not a PCLM: embedding -> tanh layer -> readout, predicting the next token from the current one, with value
    nodes where it calls `nodes(...)`."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.hidden = nn.Linear(16, 16)
        self.readout = nn.Linear(16, vocab)

    def forward(self, input_ids, attention_mask=None, labels=None, nodes=None):
        nodes = nodes or FeedForward()
        h = nodes("embed.out", self.embed(input_ids), attention_mask)
        h = nodes("hidden.out", torch.tanh(self.hidden(h)), attention_mask)
        logits = self.readout(h)
        if labels is None:
            return SimpleNamespace(logits=logits)
        targets = F.pad(labels[:, 1:], (0, 1), value=-100)
        loss = nodes.clamp_output(logits.flatten(0, 1), targets.flatten())
        return SimpleNamespace(loss=loss, logits=logits)


def test_a_custom_module_that_calls_nodes_trains(sentences, tokenizer, one_thread):
    torch.manual_seed(0)
    model = Bigram(len(tokenizer))
    asked: list[str] = []

    def select(name: str):
        asked.append(name)
        return gaussian

    before = pclm.evaluate(model, sentences, task="clm")
    result = pclm.train(
        model,
        sentences,
        task="clm",
        algorithm="ipc",
        inference_steps=T,
        value_nodes=select,
        lr=1e-2,
        batch_size=8,
        epochs=3,
    )
    after = pclm.evaluate(model, sentences, task="clm")
    assert set(asked) == {"embed.out", "hidden.out"} and result.steps == 15
    assert after["ppl"] < before["ppl"] / 10
    # the API's score is the corpus perplexity of the model's own next-token log-likelihoods
    ids = [torch.tensor(row) for row in sentences["input_ids"]]
    with torch.no_grad():
        token_nll = [
            -F.log_softmax(model.readout(torch.tanh(model.hidden(model.embed(x)))), -1)[:-1].gather(1, x[1:, None])[
                :, 0
            ]
            for x in ids
        ]
    nll = torch.cat(token_nll)
    assert after["ppl"] == after["ppl_eos_in"] == pytest.approx(torch.exp(nll.mean()).item(), rel=1e-5)
    # the paper's count leaves </s> out of the targets
    kept = torch.cat([x[1:] != tokenizer.eos_token_id for x in ids])
    assert after["ppl_eos_out"] == pytest.approx(torch.exp(nll[kept].mean()).item(), rel=1e-5) != after["ppl"]
    assert pclm.evaluate(model, sentences, task="clm", count_eos=False)["ppl"] == after["ppl_eos_out"]


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda m, ds: pclm.train(m, ds.remove_columns("input_ids")),
            "train_dataset has no 'input_ids' column (tokenise it first, e.g. "
            "dataset.map(lambda b: tokenizer(b['text']), batched=True))",
        ),
        (lambda m, ds: pclm.train(m, ds.to_dict()), "train_dataset must be a datasets.Dataset, got dict"),
        (lambda m, ds: pclm.train(m, ds, algorithm="sgd"), "unknown algorithm 'sgd' (choose from bp, pc, ipc, zil)"),
        (
            lambda m, ds: pclm.train(m, ds, inference_steps=3),
            "value_nodes='out+scores' puts 3 value nodes on a chain but ipc with inference_steps=3 reaches only 2: "
            "the lowest weights would never learn",
        ),
        (lambda m, ds: pclm.train(m, ds, batch_size=0), "batch_size must be a positive integer, got 0"),
        (lambda m, ds: pclm.train(Bigram(VOCAB), ds), "pass task='clm' or task='mlm': Bigram is not a PCLMFor* model"),
        (lambda m, ds: pclm.evaluate(m, ds.select([])), "dataset is empty"),
        (lambda m, ds: pclm.evaluate(m, ds, task="seq2seq"), "task must be 'clm' or 'mlm', got 'seq2seq'"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(call, message, sentences):
    with pytest.raises(UsageError) as err:
        call(tiny_lm("clm", vocab_size=VOCAB), sentences)
    assert str(err.value) == message


def test_import_pclm_stays_light_and_resolves_the_api():
    code = (
        "import sys, pclm; light = 'torch' not in sys.modules; import pclm.api\n"
        "print(light, pclm.train is pclm.api.train, pclm.evaluate is pclm.api.evaluate, "
        "pclm.TrainResult is pclm.api.TrainResult)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )
    assert done.stdout.split() == ["True"] * 4, done.stderr[-2000:]


def test_train_returns_the_best_dev_epoch_not_the_last(sentences, tokenizer, one_thread):
    # dev sentences unlike the training ones and a large learning rate: dev perplexity turns up, so best != last
    text = [f"a {b} ate {a} !" for a in NOUNS[:3] for b in NOUNS[3:]]
    dev = Dataset.from_dict({"text": text}).map(lambda b: tokenizer(b["text"]), batched=True)
    kwargs = {"algorithm": "bp", "lr": 0.05, "epochs": 4, "batch_size": 8, "eval_dataset": dev, "seed": 0}
    kept = pclm.train(tiny_lm("clm", vocab_size=VOCAB), sentences, **kwargs)
    assert kept.best_epoch < len(kept.history)  # the precondition that gives this test its teeth
    assert pclm.evaluate(kept.model, dev)["ppl"] == pytest.approx(kept.best_dev_ppl, rel=1e-6)
    last = pclm.train(tiny_lm("clm", vocab_size=VOCAB), sentences, keep_best=False, **kwargs)
    assert pclm.evaluate(last.model, dev)["ppl"] == pytest.approx(last.history[-1]["dev_ppl"], rel=1e-6)
    drop = lambda h: [{k: v for k, v in e.items() if k != "train_seconds"} for e in h]  # noqa: E731
    assert drop(last.history) == drop(kept.history)  # the same run; only what the model holds at the end differs


def test_tokenize_gives_what_train_takes(tokenizer):
    data = pclm.tokenize(["the cat saw the dog .", "a very long sentence " * 10], max_length=8)
    assert data.column_names == ["input_ids", "length"]
    first, long = data["input_ids"]
    assert first == tokenizer("the cat saw the dog .").input_ids
    assert len(long) == 8 and long[-1] == tokenizer.eos_token_id and data["length"][1] > 8
    with pytest.raises(UsageError, match="texts must be strings"):
        pclm.tokenize(["ok", 3])


def test_readme_python_example_runs_as_written(tmp_path):
    readme = (REPO / "README.md").read_text()
    block = readme.split("```python\nimport pclm\n", 1)[1].split("```", 1)[0]
    assert len(block.splitlines()) <= 10
    done = subprocess.run(
        [sys.executable, "-c", "import pclm\n" + block], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "my_model" / "config.json").is_file()
