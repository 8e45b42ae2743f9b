"""PCLMForMaskedLM / PCLMForCausalLM as Hugging Face models.

Oracles: the model before saving (round trips), Hugging Face's own Auto* factories and pipelines, the definition of
a causal model (output at t is a function of tokens <= t only), the unpadded input (padding), and the full logits
(masked-LM logits at the masked positions)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, pipeline
from transformers.modeling_outputs import BaseModelOutput

import pclm  # noqa: F401  (registers the Auto* classes)
from pclm import PCLMConfig, PCLMForCausalLM, PCLMForMaskedLM, PCLMModel
from tests.conftest import tiny_config

V = 8001  # the repository tokenizer's vocabulary: the fill-mask pipeline below reads its ids


def random_model(cls, seed: int = 0, **kw):
    """The tests' tiny model over the tokenizer's vocabulary (`cls` may be the bare `PCLMModel` too), every weight
    random and not small, so that no output is trivially constant."""
    torch.manual_seed(seed)
    model = cls(tiny_config(vocab_size=V, **kw))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


def random_ids(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, V, (batch, length), generator=g)  # ids 0-4 are the special tokens


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize(
    "cls, auto", [(PCLMForMaskedLM, AutoModelForMaskedLM), (PCLMForCausalLM, AutoModelForCausalLM)]
)
def test_save_pretrained_round_trip_gives_identical_logits(tmp_path, cls, auto, layer_norm):
    model = random_model(cls, layer_norm=layer_norm)
    ids = random_ids(2, 9)
    model.save_pretrained(tmp_path)
    loaded = auto.from_pretrained(tmp_path).eval()
    assert type(loaded) is cls
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)


@pytest.mark.parametrize("cls", [PCLMForMaskedLM, PCLMForCausalLM])
def test_auto_model_loads_the_bare_network_of_a_checkpoint(tmp_path, cls):
    model = random_model(cls)
    ids = random_ids(2, 9)
    model.save_pretrained(tmp_path)
    bare = AutoModel.from_pretrained(tmp_path).eval()
    assert type(bare) is PCLMModel and bare.config.is_decoder == (cls is PCLMForCausalLM)
    with torch.no_grad():
        out = bare(ids)
        assert isinstance(out, BaseModelOutput)
        assert torch.equal(out.last_hidden_state, model.pclm(ids).last_hidden_state)  # the hidden states the head reads


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cls", [PCLMForMaskedLM, PCLMForCausalLM])
def test_half_precision_gives_the_float32_logits(cls, dtype):
    # Padding puts the attention mask's large negative into the half-precision bias (fp16 cannot hold -1e9).
    model = random_model(cls)
    ids = random_ids(2, 9)
    mask = (torch.arange(9) < torch.tensor([[6], [9]])).long()
    with torch.no_grad():
        full = model(ids, attention_mask=mask).logits
        half = model.to(dtype)(ids, attention_mask=mask).logits
    assert half.dtype == dtype
    scale = full.abs().amax()
    assert ((half.float() - full)[mask.bool()].abs().amax() / scale) < 0.05


@pytest.mark.parametrize("cls", [PCLMForMaskedLM, PCLMForCausalLM])
def test_unsupported_forward_arguments_are_refused_and_return_dict_false_gives_a_tuple(cls):
    model = random_model(cls)
    ids = random_ids(2, 9)
    for kwargs, message in (
        ({"output_hidden_states": True}, "output_hidden_states=True is not supported"),
        ({"output_attentions": True}, "output_attentions=True is not supported"),
        ({"inputs_embeds": torch.zeros(2, 9, model.config.hidden_size)}, "inputs_embeds is not supported"),
    ):
        with pytest.raises(ValueError, match=message):
            model(ids, **kwargs)
    with torch.no_grad():
        as_tuple, as_output = model(ids, return_dict=False), model(ids)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], as_output.logits)


def test_auto_config_round_trip(tmp_path):
    config = tiny_config(num_hidden_layers=3, layer_norm=False, layer_norm_eps=1e-6, initializer_range=0.05)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is PCLMConfig and loaded.model_type == "pclm"
    fields = [
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "layer_norm",
        "layer_norm_eps",
        "initializer_range",
        "pad_token_id",
    ]
    assert {f: getattr(loaded, f) for f in fields} == {f: getattr(config, f) for f in fields}
    assert (loaded.num_hidden_layers, loaded.layer_norm, loaded.layer_norm_eps) == (3, False, 1e-6)


def test_config_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="multiple"):
        PCLMConfig(hidden_size=30, num_attention_heads=4)


def test_fill_mask_pipeline_returns_top_k(tokenizer):
    fill = pipeline("fill-mask", model=random_model(PCLMForMaskedLM), tokenizer=tokenizer)
    out = fill(f"the cat sat on the {tokenizer.mask_token} .", top_k=3)
    assert len(out) == 3
    for item in out:
        assert set(item) >= {"score", "token", "token_str", "sequence"}
        assert 0.0 <= item["score"] <= 1.0 and 0 <= item["token"] < V
    scores = [item["score"] for item in out]
    assert scores == sorted(scores, reverse=True) and len({item["token"] for item in out}) == 3


def test_causal_output_at_t_ignores_later_tokens():
    model = random_model(PCLMForCausalLM)
    ids = random_ids(2, 12)
    t = 6
    changed = ids.clone()
    changed[:, t + 1 :] = random_ids(2, 12 - t - 1, seed=7)
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-5)
    assert (a[:, t + 1 :] - b[:, t + 1 :]).abs().amax() > 1e-2  # the later outputs do see the change


def test_causal_output_at_t_sees_earlier_tokens():
    model = random_model(PCLMForCausalLM)
    ids = random_ids(1, 12)
    changed = ids.clone()
    changed[0, 2] = (ids[0, 2] + 1) % V
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    torch.testing.assert_close(a[:, :2], b[:, :2], rtol=0, atol=1e-5)
    assert ((a[0, 3:] - b[0, 3:]).abs().amax(-1) > 1e-3).all()  # every later position is affected


def test_masked_model_is_bidirectional():
    model = random_model(PCLMForMaskedLM)
    ids = random_ids(1, 12)
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % V
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    assert (a[0, 0] - b[0, 0]).abs().amax() > 1e-3  # the first position sees the last token


@pytest.mark.parametrize("cls", [PCLMForMaskedLM, PCLMForCausalLM])
def test_padding_leaves_the_other_outputs_unchanged(cls):
    model = random_model(cls)
    short, long = random_ids(1, 7, seed=2), random_ids(1, 11, seed=3)
    batch = torch.zeros(2, 11, dtype=torch.long)  # right padding with <pad> = 0
    batch[0, :7], batch[1] = short[0], long[0]
    mask = (torch.arange(11) < torch.tensor([[7], [11]])).long()
    with torch.no_grad():
        padded = model(batch, attention_mask=mask).logits
        alone_short, alone_long = model(short).logits, model(long).logits
    torch.testing.assert_close(padded[0, :7], alone_short[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(padded[1], alone_long[0], rtol=0, atol=1e-5)
    if cls is PCLMForMaskedLM:  # and the mask matters: pads left unmasked do change what attends to them
        with torch.no_grad():  # (a causal model never attends to right padding, masked or not)
            unmasked = model(batch).logits
        assert (unmasked[0, :7] - alone_short[0]).abs().amax() > 1e-3


def test_masked_lm_with_labels_scores_only_the_masked_positions():
    model = random_model(PCLMForMaskedLM)
    ids = random_ids(3, 10)
    labels = torch.full_like(ids, -100)
    picked = torch.zeros_like(ids, dtype=torch.bool)
    picked[0, [1, 4]] = picked[2, [0, 7, 9]] = True  # sample 1 has no target
    labels[picked] = ids[picked]
    with torch.no_grad():
        full = model(ids).logits  # (B, T, V)
        out = model(ids, labels=labels)
    assert out.logits.shape == (5, V)
    torch.testing.assert_close(out.logits, full[picked], rtol=0, atol=1e-5)  # row-major order of the positions
    torch.testing.assert_close(out.loss, F.cross_entropy(full[picked], ids[picked]), rtol=1e-6, atol=1e-6)


def test_causal_lm_loss_is_the_shifted_cross_entropy():
    model = random_model(PCLMForCausalLM)
    ids = random_ids(2, 8)
    labels = ids.clone()
    labels[1, 5:] = -100
    with torch.no_grad():
        out = model(ids, labels=labels)
    logits, targets = out.logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1)
    torch.testing.assert_close(out.loss, F.cross_entropy(logits, targets, ignore_index=-100), rtol=1e-6, atol=1e-6)


def test_building_a_masked_model_does_not_change_a_causal_model_sharing_its_config():
    config = tiny_config()
    causal = PCLMForCausalLM(config)
    PCLMForMaskedLM(config)
    assert causal.config.is_decoder
