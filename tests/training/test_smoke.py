"""End to end: short PC and iPC runs on real 1B Word text lower dev perplexity, and their checkpoints are
ordinary pclm checkpoints (from_pretrained + pipelines)."""

from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer, pipeline

from pclm.config import load_config
from pclm.training.lm import train_lm

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data" / "lm1b"
DATA = str(SHARED) if SHARED.is_dir() else None  # else the embedded sample

SMALL = [
    "data.train_size=320",
    "data.dev_size=64",
    "data.test_size=64",
    "data.max_length=16",
    "train.batch_size=32",
    "train.eval_batch_size=64",
    "train.patience=0",
    "train.tracker=none",
    "model.hidden_size=32",
    "model.intermediate_size=64",
]


@pytest.mark.parametrize(
    "task,algo,extra",
    [
        ("clm", "ipc", ["train.lr=0.002", "train.epochs=2"]),
        ("clm", "pc", ["pc.inference_steps=4", "pc.inference_lr=0.1", "train.lr=0.002", "train.epochs=2"]),
        ("mlm", "ipc", ["pc.inference_steps=4", "train.lr=0.002", "train.epochs=2"]),
    ],
)
def test_short_run_lowers_dev_perplexity(tmp_path, task, algo, extra):
    cfg = load_config(ROOT / "configs" / f"{task}_{algo}.yaml", SMALL + extra, **{"data.data_dir": DATA})
    metrics = train_lm(cfg, tmp_path / "run")
    dev = [h["dev_ppl"] for h in metrics["history"]]
    assert metrics["status"] == "completed" and len(dev) == 2
    assert dev[1] < dev[0] < metrics["init_dev_ppl"], (metrics["init_dev_ppl"], dev)  # untrained: ~vocabulary size
    assert metrics["test_ppl"] > 1
    auto = AutoModelForCausalLM if task == "clm" else AutoModelForMaskedLM
    model = auto.from_pretrained(metrics["best_model"])
    tokenizer = AutoTokenizer.from_pretrained(metrics["best_model"])
    if task == "mlm":
        assert len(pipeline("fill-mask", model=model, tokenizer=tokenizer)("The <mask> said .")) == 5
    else:
        ids = tokenizer("The", return_tensors="pt").input_ids[:, :-1]
        assert model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False).shape[1] == ids.shape[1] + 4
