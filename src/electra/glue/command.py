"""`electra finetune`: the command-line options, and the adapter that calls `electra.glue.finetune.finetune`."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import asdict
from pathlib import Path
from typing import Any

from electra.config import add_config_arguments, from_dict
from electra.glue.finetune import FinetuneConfig, finetune


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N, got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"shard K/N needs 0 <= K < N, got {text!r}")
    return k, n


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="pretraining run directory, HF-format directory, hub id "
        "(google/electra-small-discriminator), or random:<preset> (no pretraining)",
    )
    parser.add_argument(
        "--tasks",
        default="all",
        help="all, or a comma-separated list: cola,sst2,mrpc,stsb,qqp,"
        "mnli,qnli,rte,wnli (AX is predicted by the MNLI runs)",
    )
    parser.add_argument(
        "--glue-dir",
        help="GLUE data in the original distribution layout (default: the hub's nyu-mll/glue through `datasets`)",
    )
    parser.add_argument("--runs", type=int, default=10, help="runs (seeds) per task (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; runs use seed, seed+1, ...")
    parser.add_argument("--out", required=True, help="output directory (an existing sweep is continued)")
    parser.add_argument(
        "--checkpoint",
        default="latest",
        help="for a pretraining run: latest, a kept fraction (6.25%%, 25%%, ...) or step_N",
    )
    parser.add_argument("--tokenizer", help="vocab file or directory, if not the model's own")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:K")
    parser.add_argument(
        "--shard",
        type=_parse_shard,
        default=(0, 1),
        metavar="K/N",
        help="run only every N-th run starting at K (one process per GPU)",
    )
    parser.add_argument("--save-model", action="store_true", help="keep each run's weights (model.safetensors)")
    parser.add_argument("--quiet", action="store_true")
    defaults = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}
    add_config_arguments(
        parser,
        FinetuneConfig,
        title="finetuning recipe",
        description="every value of the recipe can be overridden",
        prefix="ft__",
        describe=lambda name: f"default {'by model size / task' if defaults[name] is None else defaults[name]}",
    )


def resolved_finetune_config(args: argparse.Namespace) -> dict[str, Any]:
    """What `--print-config` shows: the options and the recipe (None: chosen by model size and task)."""
    recipe = {k[4:]: v for k, v in vars(args).items() if k.startswith("ft__")}
    shown = {
        k: v
        for k, v in vars(args).items()
        if not k.startswith(("ft__", "_")) and k not in ("command", "config", "print_config")
    }
    return {**shown, **asdict(from_dict(FinetuneConfig, recipe, "the finetuning options"))}


def run_finetune(args: argparse.Namespace) -> int:
    recipe = {k[4:]: v for k, v in vars(args).items() if k.startswith("ft__")}
    finetune(
        args.model,
        args.out,
        args.tasks,
        args.glue_dir,
        args.runs,
        args.seed,
        device=args.device,
        tokenizer=args.tokenizer,
        shard=args.shard,
        save_model=args.save_model,
        quiet=args.quiet,
        checkpoint=args.checkpoint,
        **recipe,
    )
    print((Path(args.out) / "results.md").read_text(), end="")
    return 0
