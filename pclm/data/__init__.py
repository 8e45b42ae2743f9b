"""Data pipelines: the 1B Word text corpus (Hugging Face ``datasets``) and the language-model collators."""

from pclm.data.collate import eval_collator, premask, train_collator
from pclm.data.lm1b import EMBEDDED_LM1B_DIR, RELEASE_DIRNAME, find_lm1b_files, load_lm1b, tokenize_lm1b

__all__ = ["EMBEDDED_LM1B_DIR", "RELEASE_DIRNAME", "find_lm1b_files", "load_lm1b", "tokenize_lm1b",
           "eval_collator", "premask", "train_collator"]
