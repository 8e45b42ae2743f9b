"""The committed tokenizer in ``tokenizer/`` (the command that trains it, ``pclm-train-tokenizer``:
tests/cli/test_train_tokenizer.py).

Oracles: the SentencePiece library reading the committed ``.model`` (ids must agree), the documented
whitespace rule for the round trip, and the fixed special-token ids.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sentencepiece as spm
from transformers import AutoTokenizer

from pclm.data import EMBEDDED_LM1B_DIR, load_lm1b

REPO = Path(__file__).resolve().parents[2]
TOKENIZER_DIR = REPO / "tokenizer"
SPECIAL_IDS = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "<mask>": 4}


def normalise(line: str) -> str:
    """The documented round-trip rule: strip leading/trailing spaces, collapse runs of spaces."""
    return re.sub(" +", " ", line.strip(" "))


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))


@pytest.fixture(scope="module")
def embedded_lines(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    splits = load_lm1b(EMBEDDED_LM1B_DIR, cache_dir=tmp_path_factory.mktemp("hf_cache"))
    return list(splits["test"]["text"]) + list(splits["test_sample"]["text"])


def test_vocabulary_and_special_ids(tokenizer):
    assert len(tokenizer) == 8001
    assert tokenizer.convert_tokens_to_ids(list(SPECIAL_IDS)) == list(SPECIAL_IDS.values())
    roles = ("pad", "unk", "bos", "eos", "mask")
    assert [getattr(tokenizer, f"{role}_token") for role in roles] == list(SPECIAL_IDS)
    assert [getattr(tokenizer, f"{role}_token_id") for role in roles] == list(SPECIAL_IDS.values())
    sp = spm.SentencePieceProcessor(model_file=str(TOKENIZER_DIR / "lm1b-bpe-8001.model"))
    assert sp.get_piece_size() == 8001
    assert [sp.id_to_piece(i) for i in range(5)] == list(SPECIAL_IDS)
    assert sum(sp.is_byte(i) for i in range(8001)) == 256


def test_mask_is_one_token(tokenizer):
    ids = tokenizer("a <mask> b").input_ids
    a, b = tokenizer("a").input_ids[1:-1], tokenizer("b").input_ids[1:-1]
    assert ids == [2, *a, 4, *b, 3]
    assert ids.count(tokenizer.mask_token_id) == 1


def test_round_trip_and_agreement_with_sentencepiece(tokenizer, embedded_lines):
    sp = spm.SentencePieceProcessor(model_file=str(TOKENIZER_DIR / "lm1b-bpe-8001.model"))
    encoded = tokenizer(embedded_lines).input_ids
    decoded = tokenizer.batch_decode(encoded, skip_special_tokens=True)
    assert all(ids[0] == 2 and ids[-1] == 3 for ids in encoded)
    assert [ids[1:-1] for ids in encoded] == sp.encode(embedded_lines)
    assert decoded == [normalise(line) for line in embedded_lines]
    assert not any(tokenizer.unk_token_id in ids for ids in encoded)


UNSEEN = [
    "  Leading ,   inner   and trailing spaces  ",
    "naïve café € 1,000 — 漢字 ☃ \U0001f600",
    "tab\tand\u00a0nbsp",
]


@pytest.mark.parametrize("text", UNSEEN)
def test_unseen_characters_and_whitespace(tokenizer, text):
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids  # byte fallback instead of <unk>
    assert tokenizer.decode(ids, skip_special_tokens=True) == normalise(text)
