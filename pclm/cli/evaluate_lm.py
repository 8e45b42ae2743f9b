"""Perplexity of a pclm checkpoint on a UTF-8 text file, one sentence per line, scored as training scores its dev
and test splits.

    python scripts/evaluate_lm.py runs/clm_ipc_seed0/best sentences.txt
    pclm-evaluate-lm runs/mlm_bp_seed0/best sentences.txt --max-length 64 --json scores.json

CHECKPOINT is a folder written by training (`best/`) or `save_pretrained`: a config.json of model_type "pclm",
model.safetensors and the tokenizer. Every non-empty line is encoded as in training, `<s> ... </s>` cut to
--max-length tokens. A causal model is scored on every token after `<s>`, and again without `</s>` as a
target (the paper's count, training's data.count_eos=false; both are printed); a masked model on the positions the
training job's fixed evaluation masking picks (--mlm-probability, --mask-seed), or pooled over several fixed
maskings (--mask-seeds 0-19). No code from the folder runs: pclm's own classes read the weights. Bad input exits with code 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

_DEFAULT_MLM_PROBABILITY = 0.15  # pclm.config.DataConfig's, checked equal by tests/cli/test_evaluate_lm.py
_DEFAULT_MASK_SEED = 1234


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pclm.errors import ArgumentParser

    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="checkpoint folder (config.json, model.safetensors, tokenizer)")
    p.add_argument("text", help="UTF-8 text file, one sentence per line (empty lines are skipped)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch (default 64)")
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per sentence, <s> and </s> included (default: the model's max_position_embeddings; "
        "training cuts at data.max_length)",
    )
    p.add_argument(
        "--mlm-probability",
        type=float,
        default=_DEFAULT_MLM_PROBABILITY,
        help=f"masked models: share of tokens masked (default {_DEFAULT_MLM_PROBABILITY})",
    )
    p.add_argument(
        "--mask-seed",
        type=int,
        default=_DEFAULT_MASK_SEED,
        help=f"masked models: seed of the fixed masking (default {_DEFAULT_MASK_SEED}, training's)",
    )
    p.add_argument(
        "--mask-seeds",
        help="masked models: several fixed maskings (e.g. 0-19), their NLL pooled over every masked token; replaces "
        "--mask-seed. On a short text one masking holds few targets and its perplexity swings with the draw",
    )
    p.add_argument("--json", help="also write the scores to this JSON file")
    return p.parse_args(argv)


def read_config(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's config.json, after checking that the folder holds a pclm model's weights and tokenizer."""
    from pclm.errors import UsageError

    if not checkpoint.is_dir():
        raise UsageError(f"checkpoint folder not found: '{checkpoint}'")
    try:
        config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        why = "no config.json" if not (checkpoint / "config.json").is_file() else f"config.json unreadable: {err}"
        raise UsageError(f"'{checkpoint}' is not a pclm checkpoint ({why})") from None
    if not isinstance(config, dict) or config.get("model_type") != "pclm":
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise UsageError(f"'{checkpoint}' is not a pclm checkpoint (model_type {kind!r}, expected 'pclm')")
    from pclm.config import LM_MODEL_MINIMA

    for key in LM_MODEL_MINIMA:  # a stranger's config.json: the sizes the model is built from must be sizes
        value = config.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(
                f"'{checkpoint}' is not a pclm checkpoint (config.json: '{key}' must be a positive integer, got {value!r})"
            )
    missing = [n for n in ("model.safetensors", "tokenizer.json") if not (checkpoint / n).is_file()]
    if missing:
        raise UsageError(f"'{checkpoint}' is not a complete pclm checkpoint ({', '.join(missing)} missing)")
    return config


def read_sentences(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 text file (split as `datasets`' text loader splits them)."""
    from pclm.errors import UsageError

    if not path.is_file():
        raise UsageError(f"text file not found: '{path}'")
    data = path.read_bytes()
    if b"\x00" in data:
        raise UsageError(f"'{path}' is binary (it holds NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"'{path}' is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})") from None
    sentences = [line for line in text.splitlines() if line.strip()]
    if not sentences:
        raise UsageError(f"'{path}' has no non-empty line to score")
    return sentences


def check_args(args: argparse.Namespace, config: dict[str, Any]) -> None:
    from pclm.config import BATCH_MAX
    from pclm.errors import UsageError
    from pclm.folders import check_writable

    positions = int(config.get("max_position_embeddings", 0))
    if not 1 <= args.batch_size <= BATCH_MAX:
        raise UsageError(f"--batch-size must be in [1, {BATCH_MAX}], got {args.batch_size}")
    if args.max_length is not None and not 2 <= args.max_length <= positions:
        raise UsageError(
            f"--max-length must be in [2, {positions}] (the model's max_position_embeddings), got {args.max_length}"
        )
    if not 0 < args.mlm_probability < 1:
        raise UsageError(f"--mlm-probability must be in (0, 1), got {args.mlm_probability}")
    if not 0 <= args.mask_seed < 2**32:
        raise UsageError(f"--mask-seed must be in [0, {2**32 - 1}], got {args.mask_seed}")
    if args.mask_seeds is not None:
        from pclm.runs import parse_seeds

        try:
            parse_seeds(args.mask_seeds)
        except ValueError as err:
            raise UsageError(f"--mask-seeds: {err}") from None
    if args.json:
        check_writable([Path(args.json)], "the folder of --json")


def score(
    checkpoint: Path,
    sentences: list[str],
    causal: bool,
    max_length: int,
    batch_size: int,
    mlm_probability: float,
    mask_seeds: list[int],
) -> dict[str, float]:
    """Load the checkpoint and score the sentences: {"ppl", "nll", "targets"} (`pclm.evaluate`), and for a causal
    model both perplexity counts (`ppl_eos_in`, `ppl_eos_out`; `ppl` counts `</s>`). A masked model is scored under
    each fixed masking of `mask_seeds`, the NLL pooled over all their targets; a causal one once."""
    from datasets import Dataset, DatasetDict
    from transformers import AutoTokenizer

    import pclm
    from pclm.data.lm1b import tokenize_lm1b
    from pclm.errors import UsageError
    from pclm.models import PCLMForCausalLM, PCLMForMaskedLM

    try:
        model = (PCLMForCausalLM if causal else PCLMForMaskedLM).from_pretrained(checkpoint, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint), trust_remote_code=False)
    except Exception as err:  # noqa: BLE001 - corrupt weights or tokenizer files fail deep in their libraries
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"cannot load the checkpoint '{checkpoint}' ({first[:200]})") from None
    if causal:  # the checkpoint's causal tokenizer leaves out </s> (prompts); training scored it
        # both flags: a reloaded tokenizer reports add_bos_token False, and setting one flag rebuilds the
        # post-processor from both; a causal checkpoint's tokenizer leaves `<s>` unregistered (pclm.models.hub)
        if tokenizer.bos_token is None:
            tokenizer.bos_token = tokenizer.convert_ids_to_tokens(model.config.bos_token_id)
        tokenizer.add_bos_token, tokenizer.add_eos_token = True, True
    tokenizer.padding_side = "right"  # as in training (a causal checkpoint's pads left, for generation)
    data = tokenize_lm1b(DatasetDict({"text": Dataset.from_dict({"text": sentences})}), tokenizer, max_length)["text"]
    scores = [
        pclm.evaluate(
            model,
            data,
            task="clm" if causal else "mlm",
            tokenizer=tokenizer,
            batch_size=batch_size,
            mlm_probability=mlm_probability,
            eval_mask_seed=seed,
        )
        for seed in (mask_seeds[:1] if causal else mask_seeds)
    ]
    if causal:
        return scores[0]
    targets = sum(s["targets"] for s in scores)
    nll = sum(s["nll"] * s["targets"] for s in scores) / targets if targets else 0.0
    return {"ppl": math.exp(nll) if targets else scores[0]["ppl"], "nll": nll, "targets": targets}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pclm.errors import UsageError, report_usage_error
    from pclm.runs import parse_seeds

    try:
        checkpoint = Path(args.checkpoint)
        config = read_config(checkpoint)
        check_args(args, config)
        sentences = read_sentences(Path(args.text))
        causal = bool(config.get("is_decoder"))
        length = args.max_length or int(config["max_position_embeddings"])
        seeds = [args.mask_seed] if args.mask_seeds is None else parse_seeds(args.mask_seeds)
        result = score(checkpoint, sentences, causal, length, args.batch_size, args.mlm_probability, seeds)
        if not result["targets"]:
            raise UsageError(
                f"nothing to score in '{args.text}': no masked position was drawn "
                "(raise --mlm-probability or give longer sentences)"
            )
    except UsageError as err:
        return report_usage_error(err)
    what = "next-token predictions" if causal else "masked tokens"
    if not causal and len(seeds) > 1:
        what += f" in {len(seeds)} maskings"
    print(
        f"perplexity {result['ppl']:.4f} (mean NLL {result['nll']:.4f} nats over {result['targets']} {what}, "
        f"{len(sentences)} sentences)"
    )
    if causal:
        print(f"without </s> as a target (the paper's count): perplexity {result['ppl_eos_out']:.4f}")
    if args.json:
        payload = {
            "checkpoint": str(checkpoint),
            "text": args.text,
            "task": "clm" if causal else "mlm",
            "sentences": len(sentences),
            "max_length": length,
            **result,
        }
        if not causal:
            if args.mask_seeds is None:
                payload.update(mlm_probability=args.mlm_probability, mask_seed=args.mask_seed)
            else:
                payload.update(mlm_probability=args.mlm_probability, mask_seeds=seeds)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    return 0


def run() -> None:
    """The `pclm-evaluate-lm` console command."""
    sys.exit(main())


if __name__ == "__main__":
    run()
