"""PCLMConfig: a small BERT-style transformer that can also run as a predictive-coding energy graph."""

from __future__ import annotations

import math
from typing import Any

from transformers import PretrainedConfig

__all__ = ["PCLMConfig", "INITS", "ACTIVATIONS", "SIZES", "CHOICES", "ConfigFieldError", "check_field"]

INITS = ("bert", "torch")
ACTIVATIONS = ("gelu", "tanh")
# the sizes the model is built from, each an integer of at least 1
SIZES = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
)
_POSITIVE, _UNIT = "a finite number > 0", "in [0, 1)"
_REALS = {  # field: (rule, test); NaN fails every test, inf every bounded one
    "layer_norm_eps": (_POSITIVE, lambda v: 0 < v < math.inf),
    "hidden_dropout_prob": (_UNIT, lambda v: 0 <= v < 1),
    "attention_probs_dropout_prob": (_UNIT, lambda v: 0 <= v < 1),
    "initializer_range": (_POSITIVE, lambda v: 0 < v < math.inf),
}
CHOICES = {"init": INITS, "hidden_act": ACTIVATIONS}  # the fields that name one of a few settings
# PCLMConfig's own fields, checked and set in this order (config.json's); is_decoder is one because transformers 5
# keeps no such field and the bare PCLMModel reads it. The token ids and tie_word_embeddings are PretrainedConfig's.
_OWN_FIELDS = (*SIZES, "layer_norm", *_REALS, *CHOICES, "is_decoder")


class ConfigFieldError(ValueError):
    """A field of `PCLMConfig` out of its range: `key` must be `rule`, got `value`."""

    def __init__(self, key: str, rule: str, value: Any) -> None:
        self.key, self.rule, self.value = key, rule, value
        super().__init__(f"{key} must be {rule}, got {value!r}")


def check_field(key: str, value: Any) -> None:
    """Raise `ConfigFieldError` when `value` breaks the rule of the field `key` (fields without a rule pass)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key in SIZES:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigFieldError(key, "an integer", value)
        if value < 1:
            raise ConfigFieldError(key, ">= 1", value)
    elif key in _REALS:
        rule, ok = _REALS[key]
        if not is_number or not ok(value):
            raise ConfigFieldError(key, rule, value)
    elif key in CHOICES and value not in CHOICES[key]:
        raise ConfigFieldError(key, f"one of {', '.join(CHOICES[key])}", value)
    elif key == "layer_norm" and not isinstance(value, bool):
        raise ConfigFieldError(key, "true or false", value)


class PCLMConfig(PretrainedConfig):
    r"""Configuration of [`PCLMForMaskedLM`] and [`PCLMForCausalLM`]. Defaults are the iPC paper's (App. D.3).

    Args:
        vocab_size (`int`, defaults to 8001): size of the SentencePiece BPE vocabulary.
        hidden_size (`int`, defaults to 128): width of every block.
        num_hidden_layers (`int`, defaults to 2): number of transformer blocks.
        num_attention_heads (`int`, defaults to 1): attention heads per block.
        intermediate_size (`int`, defaults to 512): feed-forward hidden width (4 x hidden, as BERT).
        max_position_embeddings (`int`, defaults to 128): longest input, in tokens.
        layer_norm (`bool`, defaults to True): use BERT's post-residual layer norms. The paper turns them off
            for masked-LM PC/iPC and conditional-LM PC.
        layer_norm_eps (`float`, defaults to 1e-12): epsilon of those layer norms.
        hidden_dropout_prob (`float`, defaults to 0.0): dropout on sublayer outputs. Zero by default, because
            a PC energy must be the same function at every inference step.
        attention_probs_dropout_prob (`float`, defaults to 0.0): dropout on attention probabilities.
        initializer_range (`float`, defaults to 0.02): std of the normal weight init (`init="bert"`).
        init (`str`, defaults to "bert"): weight initialisation. "bert": every linear and embedding weight from
            N(0, initializer_range), biases zero (BERT's convention); "torch": PyTorch's own defaults (linear
            layers Kaiming-uniform, embeddings N(0, 1)), what the iPC paper (App. D.2) and its reference code use.
        hidden_act (`str`, defaults to "gelu"): activation of the feed-forward hidden layer and of the prediction
            head, "gelu" (BERT) or "tanh" (the reference PC transformer).
        is_decoder (`bool`, defaults to False): set by [`PCLMForCausalLM`] (and cleared by [`PCLMForMaskedLM`]);
            selects the triangular (causal) attention mask.

    Every field is checked here (`check_field`): sizes are integers >= 1, hidden_size a multiple of
    num_attention_heads, probabilities in [0, 1), `init` and `hidden_act` one of their names; a `ValueError` says
    which field and why.
    """

    model_type = "pclm"

    def __init__(
        self,
        vocab_size: int = 8001,
        hidden_size: int = 128,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 1,
        intermediate_size: int = 512,
        max_position_embeddings: int = 128,
        layer_norm: bool = True,
        layer_norm_eps: float = 1e-12,
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        initializer_range: float = 0.02,
        init: str = "bert",
        hidden_act: str = "gelu",
        pad_token_id: int = 0,
        bos_token_id: int = 2,
        eos_token_id: int = 3,
        tie_word_embeddings: bool = False,
        is_decoder: bool = False,
        **kwargs,
    ) -> None:
        fields = dict(locals())
        for key in _OWN_FIELDS:
            check_field(key, fields[key])
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}"
            )
        for key in _OWN_FIELDS:
            setattr(self, key, fields[key])
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
