"""Train pclm's SentencePiece BPE tokenizer on the 1B Word train split and save it for Hugging Face
(`pclm-train-tokenizer`).

    pclm-train-tokenizer --data-dir ../shared/data/lm1b --output-dir tokenizer --vocab-size 8001 --seed 0

Writes ``<output-dir>/lm1b-bpe-<vocab>.model`` (SentencePiece) and the same tokenizer as a Hugging Face fast
tokenizer (``tokenizer.json``, ``tokenizer_config.json``), so ``AutoTokenizer.from_pretrained(output_dir)``
works offline. Ids 0-4 are ``<pad> <unk> <s> </s> <mask>``, inside the vocabulary size; ``byte_fallback``
spends 256 ids on ``<0x00>``..``<0xFF>`` so any UTF-8 text round-trips. Encoding adds ``<s> ... </s>``.

Whitespace: like SentencePiece's ``remove_extra_whitespaces``, leading/trailing U+0020 spaces are stripped
and runs of them collapse to one; nothing else is normalised (``identity`` rule, no NFKC).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pclm.errors import ArgumentParser, UsageError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # a checkout's ../shared/data
SPECIALS = {"pad": "<pad>", "unk": "<unk>", "bos": "<s>", "eos": "</s>", "mask": "<mask>"}


def train_sentencepiece(lines: list[str], prefix: Path, vocab_size: int, seed: int) -> Path:
    """Train a BPE SentencePiece model on ``lines``; returns the ``.model`` path."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    spm.set_random_generator_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "train.txt"
        corpus.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(prefix),
            model_type="bpe",
            vocab_size=vocab_size,
            pad_id=0,
            unk_id=1,
            bos_id=2,
            eos_id=3,
            pad_piece=SPECIALS["pad"],
            unk_piece=SPECIALS["unk"],
            bos_piece=SPECIALS["bos"],
            eos_piece=SPECIALS["eos"],
            user_defined_symbols=[SPECIALS["mask"]],
            byte_fallback=True,
            character_coverage=0.9995,
            normalization_rule_name="identity",
            remove_extra_whitespaces=True,
            add_dummy_prefix=True,
            input_sentence_size=0,  # use every sentence, no sampling
            num_threads=1,
            minloglevel=2,
        )
    prefix.with_suffix(".vocab").unlink(missing_ok=True)  # the .model holds the same pieces
    model_file = prefix.with_suffix(".model")
    # The trainer records the temporary input path and the output prefix; drop them so reruns give identical bytes.
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    del proto.trainer_spec.input[:]
    proto.trainer_spec.model_prefix = prefix.name
    model_file.write_bytes(proto.SerializeToString())
    return model_file


def to_hf_tokenizer(model_file: Path) -> PreTrainedTokenizerFast:
    """The SentencePiece BPE model as an equivalent Hugging Face fast tokenizer.

    Merges are recovered from the piece order (SentencePiece BPE ranks pieces by merge order); the
    special, byte and ``<mask>`` pieces keep their ids but take part in no merge.
    """
    import sentencepiece as spm
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.tokenization_utils_base import generate_merges

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    unmergeable = [p for i, p in enumerate(vocab) if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)]
    unmergeable.append(SPECIALS["mask"])
    merges = generate_merges(vocab, skip_tokens=unmergeable)

    bpe = models.BPE(vocab=vocab, merges=merges, unk_token=SPECIALS["unk"], byte_fallback=True, fuse_unk=True)
    tok = Tokenizer(bpe)
    # SentencePiece strips leading spaces and adds one "▁"; collapsing them to one space that Metaspace turns
    # into "▁" does the same. The normalizer runs on each piece of text between added tokens, so the text
    # after "<mask>" keeps its leading space (" b" -> "▁b") while "<mask>." gives "." (no word start).
    tok.normalizer = normalizers.Sequence(
        [normalizers.Replace(Regex(" +$"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    bos, eos = SPECIALS["bos"], SPECIALS["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} $B:1 {eos}:1",
        special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])],
    )
    # lstrip on <mask> swallows the space before it, so "a <mask> b" is [▁a, <mask>, ▁b] like a masked word.
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False, lstrip=(k == "mask")) for k, t in SPECIALS.items()]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        **{f"{k}_token": t for k, t in SPECIALS.items()},
        clean_up_tokenization_spaces=False,  # " ." must stay " ." in 1B Word's tokenized text
        padding_side="right",
    )


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA / "lm1b")
    parser.add_argument("--output-dir", type=Path, default=Path("tokenizer"))
    parser.add_argument("--vocab-size", type=int, default=8001)
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split (and of SentencePiece)")
    args = parser.parse_args(argv)
    from pclm.data import load_lm1b

    try:
        if args.vocab_size < 300:
            raise UsageError(f"--vocab-size must be >= 300 (special, byte and character pieces), got {args.vocab_size}")
        train = load_lm1b(args.data_dir, seed=args.seed)["train"]
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    args.output_dir.mkdir(parents=True, exist_ok=True)
    prefix = args.output_dir / f"lm1b-bpe-{args.vocab_size}"
    model_file = train_sentencepiece(list(train["text"]), prefix, args.vocab_size, args.seed)
    hf = to_hf_tokenizer(model_file)
    hf.save_pretrained(str(args.output_dir))
    stats = {"data_dir": str(args.data_dir), "seed": args.seed, "train_sentences": len(train), "vocab_size": len(hf)}
    print(json.dumps(stats))
    return 0


def run() -> None:
    """The `pclm-train-tokenizer` console command."""
    sys.exit(main())


if __name__ == "__main__":
    run()
