"""Run configuration: strict keys and types, precedence file < dotted overrides < CLI flags, the resolved config
saved with the run. Oracles: values written in the test's own YAML files and overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pclm.config import RunConfig, load_config, save_config
from pclm.errors import UsageError
from tests.conftest import REPO


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        "task: clm\nalgo: pc\nseed: 4\nmodel: {layer_norm: false}\n"
        "train: {epochs: 3, lr: 0.002, batch_size: 16}\npc: {inference_steps: 9}\n"
    )
    return path


def test_file_values_are_read(config_file):
    cfg = load_config(config_file)
    assert (cfg.task, cfg.algo, cfg.seed) == ("clm", "pc", 4)
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.batch_size, cfg.pc.inference_steps) == (3, 0.002, 16, 9)
    assert cfg.model == {"layer_norm": False}
    assert cfg.train.eval_batch_size == RunConfig().train.eval_batch_size  # untouched keys keep their defaults


def test_dotted_overrides_win_over_the_file(config_file):
    cfg = load_config(
        config_file,
        [
            "train.lr=0.5",
            "seed=9",
            "model.hidden_size=64",
            "data.train_size=null",
            "train.betas=[0.8, 0.95]",
            "pc.discount=0.9",
        ],
    )
    assert (cfg.train.lr, cfg.seed, cfg.data.train_size, cfg.pc.discount) == (0.5, 9, None, 0.9)
    assert cfg.model == {"layer_norm": False, "hidden_size": 64}
    assert cfg.train.betas == (0.8, 0.95) and cfg.train.epochs == 3


def test_cli_flags_win_over_overrides_and_file(config_file):
    cfg = load_config(config_file, ["seed=9", "algo=ipc"], seed=11, algo="bp", task=None, **{"data.data_dir": "/d"})
    assert (cfg.seed, cfg.algo, cfg.task, cfg.data.data_dir) == (11, "bp", "clm", "/d")  # task=None: not given


def test_numbers_written_as_text_become_floats(config_file):
    # YAML 1.1 reads "1e-3" (no dot) as a string; a float field takes it as the number it means.
    cfg = load_config(config_file, ["train.lr=1e-3", "train.weight_decay=0"])
    assert cfg.train.lr == 0.001 and type(cfg.train.weight_decay) is float


@pytest.mark.parametrize(
    "override, key",
    [("train.nope=1", "train.nope"), ("nope=1", "nope"), ("data.max_len=3", "data.max_len"), ("pc.T=3", "pc.T")],
)
def test_unknown_key_names_the_key(config_file, override, key):
    with pytest.raises(UsageError, match=f"unknown config key '{key}'"):
        load_config(config_file, [override])


def test_unknown_key_in_the_file_names_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {epochs: 2, learning_rate: 0.1}\n")
    with pytest.raises(UsageError, match="unknown config key 'train.learning_rate'"):
        load_config(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=abc", "'train.epochs' must be int"),
        ("train.epochs=2.5", "'train.epochs' must be int"),
        ("train.lr=fast", "'train.lr' must be float"),
        ("train.betas=[0.9]", "'train.betas' must be tuple"),
        ("seed.x=1", "'seed' is not a section"),
        ("data.x=1", "unknown config key 'data.x'"),
        ("train=5", "section 'train' must be a mapping"),
        ("train.epochs=0", "'train.epochs' must be >= 1"),
        ("data.mlm_probability=1.5", "'data.mlm_probability' must be in"),
        ("task=translate", "unknown task 'translate'"),
        ("train.lr", "not of the form"),
        ("data.test=train", "'data.test' must be one of auto, shard, pool, got 'train'"),
        ("data.shards=1-x", "data.shards='1-x' is not a list of shard numbers"),
        ("train.epoch_eval=dev", "'train.epoch_eval' names 'dev'; use test and/or test_sample"),
        ("data.num_proc=0", "'data.num_proc' must be >= 1"),
        ("data.count_eos=maybe", "'data.count_eos' must be bool"),
    ],
)
def test_bad_values_are_usage_errors(config_file, override, message):
    with pytest.raises(UsageError, match=message):
        load_config(config_file, [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: {epochs: [\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(UsageError, match="mapping"):
        load_config(listing, ["seed=1"])


def test_saved_config_reads_back_equal(config_file, tmp_path):
    cfg = load_config(config_file, ["train.lr=1e-3", "train.betas=[0.8, 0.95]", "data.train_size=50"])
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg


@pytest.mark.parametrize(
    "path", sorted([*(REPO / "configs").glob("*.yaml"), *(REPO / "configs/reference").glob("*.yaml")]), ids=str
)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    if path.stem.count("_") == 1:  # <task>_<algo>.yaml, the defaults of train_lm.py
        assert (cfg.task, cfg.algo) == tuple(path.stem.split("_"))


def test_run_saves_the_resolved_config(bp_run):
    run, _, code = bp_run
    assert code == 0
    saved = load_config(run / "config.yaml")
    # The command: configs/mlm_bp.yaml, overrides (seed=3 among them), then --seed 7.
    assert saved.seed == 7 and saved.algo == "bp" and saved.task == "mlm"
    assert saved.train.epochs == 2 and saved.train.lr == 0.0032 and saved.train.batch_size == 32
    assert saved.model == {"layer_norm": True, "hidden_size": 32, "intermediate_size": 64}
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["train_size"] == 300


@pytest.mark.parametrize(
    "override,backend",
    [("train.compile=true", "compiled"), ("train.compile=false", "compiled"), ("train.fused=true", "closed_form")],
)
def test_keys_of_earlier_versions_name_their_replacement(override, backend, tmp_path):
    """train.compile and train.fused became train.backend: any value of theirs, on the command line or in a file, is
    one line that names the new key and the value to write."""
    key = override.split("=")[0]
    message = (
        f"{key} was replaced by train.backend (autograd|compiled|closed_form): {key}=true is train.backend={backend}, "
        "false is the default, autograd"
    )
    for task in ("mlm", "vision"):
        if task == "mlm" and key == "train.fused":
            continue  # a language model never had train.fused
        with pytest.raises(UsageError) as err:
            load_config(None, [override], task=task)
        assert str(err.value) == message
    path = tmp_path / "old.yaml"
    path.write_text(f"task: vision\ntrain:\n  {key.split('.')[1]}: {override.split('=')[1]}\n")
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert str(err.value) == message


def test_saved_configs_of_earlier_versions_read_as_their_backend(tmp_path):
    """A run folder from before train.backend resumes and loads with the backend its train.compile / train.fused
    chose (false: autograd); both true cannot have run and is refused."""
    from pclm.config import upgrade_saved

    old = {"algo": "ipc", "train": {"lr": 0.01, "compile": False, "fused": False}}
    assert upgrade_saved(old) == {"algo": "ipc", "train": {"lr": 0.01, "backend": "autograd"}}
    assert old["train"]["compile"] is False  # the caller's dict is left as it was
    assert upgrade_saved({"train": {"compile": True, "fused": False}})["train"] == {"backend": "compiled"}
    assert upgrade_saved({"train": {"fused": True}})["train"] == {"backend": "closed_form"}
    assert load_config(None, [], base={"train": {"compile": False}}).train.backend == "autograd"
    path = tmp_path / "config.yaml"
    path.write_text("task: vision\ntrain:\n  compile: false\n  fused: true\n")
    assert load_config(None, base=path).train.backend == "closed_form"
    with pytest.raises(UsageError, match="^a saved config with train.compile and train.fused both true names two"):
        upgrade_saved({"train": {"compile": True, "fused": True}})
    with pytest.raises(UsageError, match="must be one of autograd, compiled \\(closed_form is the vision MLP's\\)"):
        load_config(None, ["train.backend=closed_form"])


def test_an_unknown_backend_is_the_same_line_from_the_config_and_from_build_backend():
    """train.backend has one check: a config and a direct `build_backend` call refuse a name alike."""
    import torch

    from pclm.training.backends import build_backend

    message = "config key 'train.backend' must be one of autograd, compiled, closed_form, got 'fused'"
    with pytest.raises(UsageError) as from_config:
        load_config(None, ["train.backend=fused"], task="vision")
    model = torch.nn.Linear(2, 2)
    with pytest.raises(UsageError) as from_build:
        build_backend("fused", model, torch.optim.SGD(model.parameters(), lr=0.1), lambda name: None)
    assert str(from_config.value) == str(from_build.value) == message


def test_the_task_key_decides_the_tree(tmp_path):
    """One loader for every task: a vision file (or task=vision) builds the vision sections, with the MLP as the
    default model; each tree refuses the other's keys; a vision run's saved config names its task and reads back."""
    from pclm.config import VisionRunConfig

    vision = load_config(REPO / "configs" / "vision" / "mlp_mnist_ipc.yaml")
    assert isinstance(vision, VisionRunConfig)
    assert (vision.task, vision.algo, vision.data.dataset, vision.model["name"]) == ("vision", "ipc", "mnist", "mlp")
    lm = load_config(REPO / "configs" / "clm_ipc.yaml")
    assert isinstance(lm, RunConfig) and (lm.task, lm.algo) == ("clm", "ipc")
    default = load_config(None, task="vision")
    assert default == VisionRunConfig() and default.model == {"name": "mlp"}
    assert load_config(None) == RunConfig()  # no task anywhere: a masked LM
    with pytest.raises(UsageError, match="^unknown config key 'data.tokenizer'"):
        load_config(None, ["data.tokenizer=tok"], task="vision")
    with pytest.raises(UsageError, match="^unknown config key 'data.dataset'"):
        load_config(None, ["data.dataset=mnist"], task="clm")
    save_config(vision, tmp_path / "saved.yaml")
    assert yaml.safe_load((tmp_path / "saved.yaml").read_text())["task"] == "vision"
    assert load_config(tmp_path / "saved.yaml") == vision


def test_a_command_refuses_another_tasks_config(tmp_path):
    """`tasks`: what the caller trains, the first the default when the config names none; a config of another task
    is one line naming the command that trains it."""
    untasked = tmp_path / "old_vision.yaml"
    untasked.write_text("algo: bp\ndata: {dataset: fashion-mnist}\nmodel: {name: cnn}\n")
    cfg = load_config(untasked, tasks=("vision",))
    assert (cfg.task, cfg.algo, cfg.data.dataset, cfg.model["name"]) == ("vision", "bp", "fashion-mnist", "cnn")
    with pytest.raises(UsageError) as err:
        load_config(REPO / "configs" / "vision" / "mlp_mnist_ipc.yaml", tasks=("mlm", "clm"))
    assert str(err.value) == "task 'vision' is trained by train_vision (pclm-train-vision / scripts/train_vision.py)"
    with pytest.raises(UsageError) as err:
        load_config(REPO / "configs" / "clm_bp.yaml", tasks=("vision",))
    assert str(err.value) == "task 'clm' is trained by train_lm (pclm-train-lm / scripts/train_lm.py)"
    with pytest.raises(UsageError, match="^unknown task 'image' \\(choose from mlm, clm, vision\\)$"):
        load_config(None, ["task=image"], tasks=("vision",))


def test_a_vision_run_saved_before_the_task_key_reads_as_vision(tmp_path):
    """A vision run's config.yaml / config.json written before `task` (no task key; its data section names a
    dataset) reads as task vision, and compares equal to today's resolved config (what --resume checks); a
    language model's saved config always named its task and is left as it is."""
    from pclm.config import VisionRunConfig, upgrade_saved

    today = VisionRunConfig().to_dict()
    old = {k: v for k, v in today.items() if k != "task"}
    assert upgrade_saved(old) == today and "task" not in old
    lm = {"algo": "ipc", "data": {"data_dir": None}}
    assert upgrade_saved(lm) is lm
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    assert load_config(None, base=path) == VisionRunConfig()
    assert load_config(None, base=old, tasks=("vision",)) == VisionRunConfig()
