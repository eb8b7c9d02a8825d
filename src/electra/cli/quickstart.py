"""`electra quickstart`: its options and the call into `electra.quickstart`."""

from __future__ import annotations

import argparse
from pathlib import Path

from electra.errors import ElectraError
from electra.quickstart import VOCAB_SIZE


def add_quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    where = "where everything goes (default %(default)s); an existing one is continued"
    parser.add_argument("--out", default="runs/quickstart", metavar="DIR", help=where)
    glue = "GLUE in its original TSV layout (default: the hub through `datasets`, if reachable)"
    parser.add_argument("--glue-dir", metavar="DIR", help=glue)
    minutes = "pretraining time budget in minutes (default %(default)s)"
    parser.add_argument("--minutes", type=float, default=3.0, help=minutes)
    parser.add_argument("--max-steps", type=int, metavar="N", help="pretraining steps (overrides --minutes)")
    corpus = "pretraining corpus, as for `electra prepare` (default: builtin)"
    parser.add_argument("--corpus", nargs="+", default=["builtin"], metavar="SRC", help=corpus)
    parser.add_argument("--vocab-size", type=int, default=VOCAB_SIZE, help="vocabulary size (default %(default)s)")
    parser.add_argument("--tasks", default="all", help="GLUE tasks, as for `electra finetune` (default all)")
    parser.add_argument("--runs", type=int, default=2, help="finetuning runs (seeds) per task (default %(default)s)")
    parser.add_argument(
        "--max-train-examples",
        type=int,
        default=500,
        metavar="N",
        help="subsample each GLUE train set to N examples (default %(default)s: with fewer, random weights learn no "
        "task, and the comparison with them is noise)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="finetuning epochs for every task (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="delete --out and start over")


def run_quickstart(args: argparse.Namespace) -> int:
    from electra.quickstart import quickstart

    if args.max_steps is not None and args.max_steps < 1:
        raise ElectraError("--max-steps must be at least 1")
    if args.glue_dir is not None and not Path(args.glue_dir).is_dir():
        raise ElectraError(f"--glue-dir {args.glue_dir} is not a directory")
    quickstart(
        args.out,
        args.glue_dir,
        args.minutes,
        args.max_steps,
        tuple(args.corpus),
        args.tasks,
        args.runs,
        args.max_train_examples,
        args.epochs,
        args.vocab_size,
        args.force,
    )
    return 0
