"""What a checkpoint carries for the Hugging Face Hub besides the weights: the tokenizer a user of the checkpoint
needs (prompts without `</s>` for a causal model, `model_max_length` = the model's positions)."""

from __future__ import annotations

import copy

from .configuration_pclm import PCLMConfig

__all__ = ["checkpoint_tokenizer"]


def checkpoint_tokenizer(tokenizer, config: PCLMConfig, causal: bool):
    """A copy of the training tokenizer for a checkpoint of a model built from `config`.

    Training encodes every sentence as `<s> ... </s>`. A causal model's checkpoint is used to continue prompts, so
    its tokenizer adds `<s>` only (a prompt ending in `</s>` would ask for the start of a new sentence) and pads on
    the left, as batched `generate` needs. Both kinds get `model_max_length` = `max_position_embeddings`."""
    out = copy.deepcopy(tokenizer)
    out.model_max_length = config.max_position_embeddings
    if causal:
        out.add_bos_token = True
        out.add_eos_token = False  # rebuilds the post-processor: "<s> $A"
        out.padding_side = "left"
    return out
