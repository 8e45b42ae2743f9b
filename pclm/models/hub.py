"""What a checkpoint carries for the Hugging Face Hub besides the weights: the tokenizer a user of the checkpoint
needs (prompts without `</s>` for a causal model, `model_max_length` = the model's positions, text that decodes
with its spaces)."""

from __future__ import annotations

import copy
import json

from .configuration_pclm import PCLMConfig

__all__ = ["checkpoint_tokenizer"]


def checkpoint_tokenizer(tokenizer, config: PCLMConfig, causal: bool):
    """A copy of the training tokenizer for a checkpoint of a model built from `config`.

    Training encodes every sentence as `<s> ... </s>`. A causal model's checkpoint is used to continue prompts, so
    its tokenizer adds `<s>` only (a prompt ending in `</s>` would ask for the start of a new sentence) and pads on
    the left, as batched `generate` needs. Both kinds get `model_max_length` = `max_position_embeddings`."""
    out = copy.deepcopy(tokenizer)
    out.model_max_length = config.max_position_embeddings
    out.init_kwargs.pop("local_files_only", None)  # a loading option of this process, not of the tokenizer
    if causal:
        out.add_bos_token = True
        out.add_eos_token = False  # rebuilds the post-processor: "<s> $A"
        out.padding_side = "left"
        _decode_with_spaces(out)
    return out


def _decode_with_spaces(tokenizer) -> None:
    """Decode "▁word" pieces to " word" everywhere but right after `<s>`.

    The training tokenizer's decoder strips the first space of whatever it decodes, so the new tokens of a generation,
    decoded alone (the text-generation pipeline does so), lose the space between prompt and continuation. Here the
    decoder keeps every space, and `<s>` (no longer skipped as special) takes the space after it away: a whole
    sequence still decodes without a leading space, a continuation keeps its own."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    bos = tokenizer.bos_token
    for added in spec["added_tokens"]:
        if added["content"] == bos:
            added["special"] = False
    steps = [d for d in spec["decoder"]["decoders"] if d["type"] != "Strip"]
    steps += [{"type": "Replace", "pattern": {"String": f"{bos} "}, "content": ""}]
    steps += [{"type": "Replace", "pattern": {"String": bos}, "content": ""}]
    spec["decoder"]["decoders"] = steps
    from tokenizers import Tokenizer

    tokenizer._tokenizer = Tokenizer.from_str(json.dumps(spec))
    tokenizer.bos_token = None  # else transformers registers `<s>` as special again, and skips it
