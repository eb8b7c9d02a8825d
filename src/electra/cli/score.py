"""`electra score`: its options and the call into `electra.api.score`."""

from __future__ import annotations

import argparse
import sys


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        metavar="FILE",
        help="sentences to score: a .tsv file with a header, a .jsonl file, or plain text (one sentence per line)",
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="M",
        help="a pretraining run directory, or an HF-format ElectraForMaskedLM (pll) or ElectraForPreTraining "
        "(electric) directory, or a hub id",
    )
    parser.add_argument(
        "--method",
        choices=("pll", "electric"),
        help="pll: masked-LM pseudo-log-likelihood (one masked copy per token); electric: minus an Electric model's "
        "summed energies (one pass). Default: the one the model is made for",
    )
    parser.add_argument(
        "--out", metavar="FILE", help="write the rows with their scores here (atomically); default stdout"
    )
    parser.add_argument(
        "--text-column",
        "--text-field",
        dest="text_column",
        metavar="NAME",
        help="the TSV column or JSONL field holding the text (default: the first column / 'text')",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        metavar="N",
        help="masked copies (pll) or sentences (electric) per forward pass",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        metavar="N",
        help="tokens per sentence with [CLS]/[SEP]; longer sentences are cut (default: the model's positions)",
    )
    parser.add_argument("--checkpoint", default="latest", help="for run directories: latest, 25%%, step_N")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run_score(args: argparse.Namespace) -> int:
    from electra.api import score

    record = score(
        args.model,
        args.file,
        args.out,
        method=args.method,
        text_column=args.text_column,
        batch_size=args.batch_size,
        max_length=args.max_length,
        checkpoint=args.checkpoint,
        progress=args.progress,
    )
    if record["truncated"]:
        print(
            f"electra score: {record['truncated']} of {record['rows']} sentences cut to {record['max_length']} tokens",
            file=sys.stderr,
        )
    if args.out is not None:
        print(f"scored {record['rows']} rows ({record['tokens']} tokens) by {record['method']}: {args.out}")
    return 0
