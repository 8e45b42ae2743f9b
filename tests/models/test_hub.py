"""Checkpoints for the Hub: code beside the weights (loads in a process where pclm cannot be imported), the model
card and tokenizer a training run writes into best/, and generation_config.json.

Oracles: the model in this process (same logits, same greedy tokens) and the run's own config and metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from pclm import PCLMForCausalLM, PCLMForMaskedLM
from pclm.models.hub import checkpoint_tokenizer
from tests.conftest import tiny_config

from .test_models import random_ids, random_model

# Run in a child: pclm made unimportable (it is installed in the venv), then the checkpoint loaded by transformers.
CHILD = textwrap.dedent("""
    import importlib.abc, json, sys
    class NoPclm(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "pclm" or name.startswith("pclm."):
                raise ImportError("pclm is not importable here")
    sys.meta_path.insert(0, NoPclm())
    import torch
    import transformers
    path, auto, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    model = getattr(transformers, auto).from_pretrained(path, trust_remote_code=True).eval()
    ids = torch.tensor(ids)
    out = {"class": type(model).__name__, "logits": model(ids).logits.tolist()}
    if auto == "AutoModelForCausalLM":
        out["generated"] = model.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=None).tolist()
        model.save_pretrained(path + "-again")  # a remote-code model saves a checkpoint that loads again
        again = getattr(transformers, auto).from_pretrained(path + "-again", trust_remote_code=True).eval()
        out["again"] = again(ids).logits.tolist()
    out["pclm_modules"] = sorted(m for m in sys.modules if m == "pclm" or m.startswith("pclm."))
    print(json.dumps(out))
""")


def load_elsewhere(path: Path, auto: str, ids: torch.Tensor, tmp_path: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-I", "-c", CHILD, str(path), auto, json.dumps(ids.tolist())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "cls, auto", [(PCLMForCausalLM, "AutoModelForCausalLM"), (PCLMForMaskedLM, "AutoModelForMaskedLM")]
)
def test_a_checkpoint_loads_where_pclm_cannot_be_imported(tmp_path, cls, auto):
    model = random_model(cls, layer_norm=False)
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["auto_map"][auto] == f"modeling_pclm.{cls.__name__}"
    ids = random_ids(2, 7)
    out = load_elsewhere(tmp_path / "ckpt", auto, ids, tmp_path)
    assert out["class"] == cls.__name__ and out["pclm_modules"] == []
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(out["logits"]), model(ids).logits, rtol=0, atol=1e-5)
    if cls is PCLMForCausalLM:
        greedy = ids
        with torch.no_grad():
            for _ in range(6):
                greedy = torch.cat([greedy, model(greedy).logits[:, -1].argmax(-1, keepdim=True)], 1)
        assert out["generated"] == greedy.tolist()
        torch.testing.assert_close(torch.tensor(out["again"]), model(ids).logits.detach(), rtol=0, atol=1e-5)


def test_generation_config_is_the_models(tmp_path):
    model = random_model(PCLMForCausalLM, layer_norm=False)
    model.save_pretrained(tmp_path)
    generation = json.loads((tmp_path / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (2, 3, 0)
    assert "max_length" not in generation  # generate() stops at the positions without it (no warning)
    positions = model.config.max_position_embeddings
    ids = random_ids(1, positions - 4, seed=2)
    assert model.generate(ids, do_sample=False, eos_token_id=None).shape[1] == positions


def test_a_training_run_writes_a_model_card_and_the_checkpoint_tokenizer(bp_run):
    run, metrics, code = bp_run
    assert code == 0
    best = run / "best"
    text = (best / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "fill-mask"
    assert {"pclm", "predictive-coding", "bp", "mlm"} <= set(meta["tags"])
    assert meta["datasets"] == ["lm1b"] and meta["metrics"] == ["perplexity"]
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert "algorithm: `bp`" in body and f"seed {cfg['seed']}" in body
    sizes = metrics["data_sizes"]
    assert f"train {sizes['train']:,}, dev {sizes['dev']:,}" in body
    assert f"| best dev perplexity | {metrics['best_dev_ppl']:.2f} |" in body
    assert f"| test perplexity | {metrics['test_ppl']:.2f} |" in body
    assert yaml.safe_load(body.split("```yaml\n", 1)[1].split("```", 1)[0]) == cfg  # the resolved config
    assert "--algo bp" in body  # the command
    tokenizer = json.loads((best / "tokenizer_config.json").read_text())
    assert tokenizer["model_max_length"] == cfg["model"].get("max_position_embeddings", 128)
    assert {"modeling_pclm.py", "configuration_pclm.py", "pc.py"} <= {p.name for p in best.iterdir()}


def test_model_card_names_the_pc_settings():
    from pclm.config import RunConfig
    from pclm.training.model_card import model_card

    cfg = RunConfig(task="clm", algo="ipc")
    cfg.model["layer_norm"] = False
    metrics = {
        "data_sizes": {"train": 300, "dev": 60, "test": 100},
        "best_epoch": 2,
        "best_dev_ppl": 812.5,
        "dev_ppl": 812.5,
        "test_ppl": 900.25,
        "steps": 20,
        "status": "finished",
    }
    body = model_card(cfg, metrics, ["python", "scripts/train_lm.py", "--algo", "ipc"])
    assert "text-generation" in body and "incremental predictive coding (iPC)" in body
    assert (
        f"T={cfg.pc.inference_steps} inference steps, x_lr (gamma)={cfg.pc.inference_lr}, discount=None, "
        f"value nodes `{cfg.pc.value_nodes}`"
    ) in body
    assert "layer norm: off" in body and "| test perplexity | 900.25 |" in body
    assert "python scripts/train_lm.py --algo ipc" in body


def test_a_causal_checkpoint_tokenizer_round_trips(tmp_path, tokenizer):
    config = tiny_config()
    checkpoint_tokenizer(tokenizer, config, causal=True).save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded("a b").input_ids == tokenizer("a b").input_ids[:-1]
    assert loaded.model_max_length == config.max_position_embeddings and loaded.padding_side == "left"


def test_model_card_holds_every_reported_perplexity_as_a_model_index(tmp_path):
    from huggingface_hub import ModelCard

    from pclm.config import RunConfig
    from pclm.training.model_card import write_model_card

    cfg = RunConfig(task="clm", algo="ipc")
    metrics = {
        "data_sizes": {"train": 300, "dev": 60, "test": 100, "test_sample": 100},
        "dev_ppl_eos_in": 800.5,
        "dev_ppl_eos_out": 900.25,
        "test_ppl_eos_in": 810.0,
        "test_ppl_eos_out": 910.0,
        "test_sample_ppl_eos_in": 820.0,
        "test_sample_ppl_eos_out": 920.0,
    }
    write_model_card(tmp_path, cfg, metrics, ["pclm-train-lm", "--task", "clm"])
    card = ModelCard.load(tmp_path / "README.md")
    results = {(r.dataset_split, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert results == {
        ("dev", "perplexity (counting </s>)"): 800.5,
        ("dev", "perplexity (not counting </s>)"): 900.25,
        ("test", "perplexity (counting </s>)"): 810.0,
        ("test", "perplexity (not counting </s>)"): 910.0,
        ("test_sample", "perplexity (counting </s>)"): 820.0,
        ("test_sample", "perplexity (not counting </s>)"): 920.0,
    }
    assert card.data.language == "en" and card.data.pipeline_tag == "text-generation"
    assert "## Limitations" in card.text and 'pipeline("text-generation"' in card.text
    assert "pclm-train-lm --task clm" in card.text


def test_register_for_auto_class_could_not_copy_the_model_code():
    """Why `model_code()` and not transformers' `register_for_auto_class` (README, "Why some parts are
    hand-written"): transformers copies the class's file and the files of its `from .x import` lines, all from the
    same folder; the model imports the PC core from the package beside it (`from ..pc import`), which it would look
    for as `.pc.py` in pclm/models/, a file that does not exist."""
    from transformers.dynamic_module_utils import get_relative_imports

    from pclm.models import modeling_pclm

    here = Path(modeling_pclm.__file__).parent
    needed = [here / f"{name}.py" for name in get_relative_imports(modeling_pclm.__file__)]
    assert here / ".pc.py" in needed and not (here / ".pc.py").exists()
    assert "pc.py" in modeling_pclm.model_code() and ".pc.py" not in modeling_pclm.model_code()
