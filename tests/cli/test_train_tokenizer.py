"""`pclm-train-tokenizer` (pclm/cli/train_tokenizer.py) end to end on the embedded sample. Oracle: the SentencePiece
library reading the model the command wrote (the Hugging Face tokenizer's ids must agree), the fixed special-token ids,
and a lossless round trip."""

from __future__ import annotations

import sentencepiece as spm
from transformers import AutoTokenizer

from pclm.cli import train_tokenizer
from pclm.data import EMBEDDED_LM1B_DIR, load_lm1b

SPECIAL_IDS = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "<mask>": 4}  # fixed by the script


def test_train_script_small_vocab(tmp_path):
    """The training script end to end on the embedded sample: HF ids equal SentencePiece ids."""
    out = tmp_path / "tok"
    assert (
        train_tokenizer.main(["--data-dir", str(EMBEDDED_LM1B_DIR), "--output-dir", str(out), "--vocab-size", "600"])
        == 0
    )
    tok = AutoTokenizer.from_pretrained(str(out))
    sp = spm.SentencePieceProcessor(model_file=str(out / "lm1b-bpe-600.model"))
    assert len(tok) == 600 and tok.convert_tokens_to_ids(list(SPECIAL_IDS)) == list(SPECIAL_IDS.values())
    lines = list(load_lm1b(EMBEDDED_LM1B_DIR, cache_dir=tmp_path / "cache")["test_sample"]["text"])
    encoded = tok(lines).input_ids
    assert [ids[1:-1] for ids in encoded] == sp.encode(lines)
    assert tok.batch_decode(encoded, skip_special_tokens=True) == lines
    assert train_tokenizer.main(["--data-dir", str(tmp_path / "missing"), "--output-dir", str(out)]) == 2
