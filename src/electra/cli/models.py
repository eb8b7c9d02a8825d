"""`electra export`, `detect` and `fill`: their options and the calls into `electra.api` / `electra.inference`."""

from __future__ import annotations

import argparse
import json

from electra.errors import ElectraError


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="RUN_DIR",
        help="a pretraining run directory (or one of its checkpoint directories), or a finetuning run "
        "SWEEP/<task>/run_<seed> (GLUE, your own data, tagging, squad11/squad20) finetuned with --save-model",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (written atomically)")
    parser.add_argument(
        "--checkpoint",
        default="latest",
        help="pretraining runs: latest (default), a kept fraction (6.25%%, 12.5%%, 25%%, 50%%, 100%%) or step_N",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing non-empty --out directory")
    parser.add_argument(
        "--tokenizer",
        metavar="SRC",
        help="GLUE runs: the tokenizer (vocab file, directory or hub id) if the run's own cannot be found any more",
    )
    verify = "skip loading the export back with transformers and comparing its outputs with ours"
    parser.add_argument("--no-verify", dest="verify", action="store_false", help=verify)


def run_export(args: argparse.Namespace) -> int:
    from electra.api import export
    from electra.finetune.export import GLUE_HEAD

    options = {k: getattr(args, k) for k in ("checkpoint", "force", "verify", "tokenizer")}
    record = export(args.source, args.out, **options)
    if "class" in record:  # a finetuned model of a transformers class
        labels = f", labels {', '.join(record['labels'])}" if record.get("labels") else ""
        print(f"exported {args.source} to {args.out} ({record['class']}{labels})")
    elif "labels" in record:  # a GLUE run: encoder + head
        print(
            f"exported {record['display']} run {args.source} to {args.out} (ElectraModel + {GLUE_HEAD}, labels "
            f"{', '.join(record['labels'])})"
        )
    else:
        what = f"{record['checkpoint_dir']} (step {record['step']})"
        parts = [f"{args.out}/{k} ({record[k]})" for k in ("discriminator", "masked_lm", "generator") if k in record]
        print(f"exported {args.source} {what} to {' and '.join(parts)}")
        if "note" in record:  # (electric: what its discriminator's logits are)
            print(f"note: {record['note']}")
    if args.verify:
        print("verified: transformers' from_pretrained loads every weight and computes our outputs")
    return 0


def _add_model_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--model", required=True, metavar="M", help=f"pretraining run directory, HF-format {what} directory, or hub id"
    )
    parser.add_argument("--checkpoint", default="latest", help="for run directories: latest, 25%%, step_N")
    parser.add_argument("--json", action="store_true", help="machine-readable output, one JSON object per text")


def add_detect_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser, "discriminator")
    parser.add_argument("texts", nargs="+", metavar="TEXT")


def run_detect(args: argparse.Namespace) -> int:
    from electra.inference import replaced_probabilities
    from electra.loading import load_model

    empty = [i for i, t in enumerate(args.texts, start=1) if not t.strip()]
    if empty:
        raise ElectraError(f"text {empty[0]} is empty; give the text whose tokens to score")
    model, tokenizer = load_model(args.model, "discriminator", args.checkpoint)
    for text in args.texts:
        tokens, probs = replaced_probabilities(model, tokenizer, text)
        if args.json:
            print(json.dumps({"tokens": tokens, "probs": probs}))
        else:
            width = max(len(t) for t in tokens + ["token"])
            print(f"{'token':<{width}}  P(replaced)")
            for token, p in zip(tokens, probs, strict=True):
                print(f"{token:<{width}}  {p:11.4f}  {'#' * round(20 * p)}")
            print()
    return 0


def add_fill_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_argument(parser, "generator")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("text", metavar="TEXT", help="text with one or more [MASK] tokens")


def run_fill(args: argparse.Namespace) -> int:
    from electra.inference import fill_masks, filled_text
    from electra.loading import load_model

    if args.top_k < 1:
        raise ElectraError(f"--top-k must be at least 1, got {args.top_k}")
    model, tokenizer = load_model(args.model, "generator", args.checkpoint)
    masks = fill_masks(model, tokenizer, args.text, args.top_k)
    if args.json:
        print(json.dumps({"masks": masks}))
    else:
        print(filled_text(args.text, [m[0]["token"] for m in masks]))
        for i, candidates in enumerate(masks):
            print(f"[MASK] #{i + 1}: " + "  ".join(f"{c['token']} ({c['prob']:.3f})" for c in candidates))
    return 0
