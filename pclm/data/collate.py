"""Batching for the two language-model tasks, on top of transformers' collators.

* clm: labels = input ids (the model shifts them), padding -> -100.
* mlm, training: BERT masking (15% of non-special tokens; 80% <mask>, 10% random, 10% kept), drawn from the
  global torch RNG, which `set_seed` and Accelerate's `save_state`/`load_state` control, so resumes replay it.
* mlm, evaluation: masks are drawn once per split with a fixed seed (`premask`), so every evaluation of every run
  scores the same positions and masked-LM perplexities are comparable.
"""

from __future__ import annotations

from datasets import Dataset
from transformers import DataCollatorForLanguageModeling, DataCollatorForTokenClassification, PreTrainedTokenizerBase

__all__ = ["train_collator", "eval_collator", "premask"]


def train_collator(task: str, tokenizer: PreTrainedTokenizerBase, mlm_probability: float = 0.15):
    return DataCollatorForLanguageModeling(tokenizer, mlm=task == "mlm", mlm_probability=mlm_probability)


def eval_collator(task: str, tokenizer: PreTrainedTokenizerBase):
    if task == "mlm":  # already masked by `premask`: pad input_ids with <pad> and labels with -100
        return DataCollatorForTokenClassification(tokenizer)
    return DataCollatorForLanguageModeling(tokenizer, mlm=False)


def premask(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, mlm_probability: float, seed: int) -> Dataset:
    """Fix the masked positions of an evaluation split: adds `labels` (-100 where not masked).

    Sentences are masked one at a time, in order, by one seeded collator, so the result depends only on
    (seed, the split's content); a sentence that draws no mask gets no target."""
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=mlm_probability, seed=seed)

    def mask_one(example):
        out = collator([{"input_ids": example["input_ids"]}])
        return {"input_ids": out["input_ids"][0].tolist(), "labels": out["labels"][0].tolist()}

    return dataset.map(mask_one, desc="fixed eval masking", load_from_cache_file=False)
