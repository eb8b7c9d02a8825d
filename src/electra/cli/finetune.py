"""`electra finetune` and `electra submit`: their options and the calls into `electra.api` / `electra.finetune`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from electra.cli.options import add_config_arguments
from electra.config import FinetuneConfig, from_dict
from electra.errors import ElectraError
from electra.finetune.tasks import KINDS as OWN_KINDS

RECIPE_HELP = {"encoder_dropout": "the encoder's hidden and attention dropout (default: the model's own, 0.1)"}


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
        help="GLUE: all (the default), or a comma-separated list: cola,sst2,mrpc,stsb,qqp,"
        "mnli,qnli,rte,wnli (AX is predicted by the MNLI runs)",
    )
    parser.add_argument(
        "--glue-dir",
        help="GLUE data in the original distribution layout (default: the hub's nyu-mll/glue through `datasets`)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        help="runs (seeds) per task (default 10 for GLUE, as the paper's medians; 1 for your own data)",
    )
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
    parser.add_argument(
        "--test-predictions",
        choices=("best", "all"),
        default="best",
        help="GLUE and your own data: predict the test data in the run that is best on dev so far (what `electra "
        "submit --pick best` uses), or in every run (for --pick median or ensemble:K) (default %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true")
    own = parser.add_argument_group(
        "your own data",
        "instead of GLUE: --train and --dev (and --test) files, .csv, .tsv (no quoting) or .jsonl, or "
        "hf:NAME[:CONFIG][@SPLIT] datasets; see docs/downstream.md",
    )
    own.add_argument("--train", help="training examples")
    own.add_argument("--dev", help="labelled examples to evaluate on")
    own.add_argument("--test", help="examples to predict (for classification: predictions_test.csv beside the ids)")
    own.add_argument(
        "--kind",
        choices=(*OWN_KINDS, "tagging", "qa"),
        default="classification",
        help="classification (one label), regression (a number), multilabel (several labels), tagging (a tag per "
        "word, CoNLL files), qa (SQuAD) (default %(default)s)",
    )
    own.add_argument("--text-column", default="text", help="the text (default %(default)s)")
    own.add_argument("--text-pair-column", help="a second text, for pairs: [CLS] text [SEP] pair [SEP]")
    own.add_argument("--label-column", default="label", help="the label, number or labels (default %(default)s)")
    own.add_argument("--labels", help="the label names in order, comma-separated (default: those of the train file)")
    own.add_argument("--label-separator", default=",", help="multilabel: between the labels of one example")
    own.add_argument("--id-column", help="test predictions are written beside this column (default: the row number)")
    own.add_argument("--name", default=None, help="the task's name: its output folder (default by kind)")
    own.add_argument("--token-column", type=int, default=0, help="tagging: the word's column (default %(default)s)")
    own.add_argument("--tag-column", type=int, default=-1, help="tagging: the tag's column (default: the last)")
    own.add_argument("--qa-version", choices=("1.1", "2.0"), default="1.1", help="qa: SQuAD 1.1 or 2.0 (no-answer)")
    defaults = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}
    add_config_arguments(
        parser,
        FinetuneConfig,
        title="finetuning recipe",
        description="every value of the recipe can be overridden",
        prefix="ft__",
        describe=lambda name: RECIPE_HELP.get(
            name, f"default {'by model size / task' if defaults[name] is None else defaults[name]}"
        ),
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


def _own_options(args: argparse.Namespace) -> dict[str, Any]:
    """The own-data options given on the command line, refused where they cannot apply."""
    if args.train is None:
        given = [o for o in ("dev", "test") if getattr(args, o) is not None]
        if given:
            raise ElectraError(f"--{given[0]} needs --train (your own data); GLUE tasks are chosen with --tasks")
        return {}
    if args.dev is None:
        raise ElectraError("--train needs --dev: the labelled examples to evaluate on")
    if args.tasks is not None or args.glue_dir is not None:
        raise ElectraError("--train (your own data) and --tasks/--glue-dir (GLUE) cannot be combined")
    return {"train": args.train, "dev": args.dev, "test": args.test}


def run_finetune(args: argparse.Namespace) -> int:
    from electra.api import finetune, finetune_own

    recipe = {k[4:]: v for k, v in vars(args).items() if k.startswith("ft__")}
    own = _own_options(args)
    common = {k: getattr(args, k) for k in ("device", "tokenizer", "save_model", "quiet", "checkpoint")}
    if own and args.kind in ("tagging", "qa"):
        return _run_other_kind(args, own, common, recipe)
    if own:
        names = ("kind", "text_column", "label_column", "id_column", "label_separator", "name", "seed", "shard")
        own.update({k: getattr(args, k) for k in names}, pair_column=args.text_pair_column)
        own["labels"] = [x.strip() for x in args.labels.split(",")] if args.labels else None
        own["test_predictions"] = args.test_predictions
        finetune_own(args.model, args.out, runs=1 if args.runs is None else args.runs, **own, **common, **recipe)
    else:
        runs = 10 if args.runs is None else args.runs
        tasks, tests = args.tasks or "all", args.test_predictions
        finetune(
            args.model, args.out, tasks, args.glue_dir, runs, args.seed, shard=args.shard, test_predictions=tests,
            **common, **recipe,
        )  # fmt: skip
    print((Path(args.out) / "results.md").read_text(), end="")
    return 0


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", metavar="DIR", help="output directory of `electra finetune`")
    parser.add_argument("--out", default="glue_submission.zip", help="zip file to write (default %(default)s)")
    parser.add_argument(
        "--pick",
        default="best",
        help="which run per task: best | median | RUN (seed or run_<seed>) | ensemble:K "
        "(average the K best dev runs' probabilities); default %(default)s",
    )


def run_submit(args: argparse.Namespace) -> int:
    from electra.finetune.submit import SERVER_FILES, build_submission, parse_pick, write_zip

    sweep = Path(args.sweep)
    if not sweep.is_dir():
        raise ElectraError(f"sweep directory {sweep} does not exist")
    pick = parse_pick(args.pick)
    files, manifest = build_submission(sweep, pick)
    if not files:
        raise ElectraError(f"{sweep} has no complete run with test predictions; run `electra finetune` first")
    write_zip(args.out, files)
    for entry in manifest:
        scores = ", ".join(f"{s:.2f}" for s in next(v for k, v in entry.items() if k.startswith("dev_")))
        print(f"{entry['file']:<12} {entry['rows']:>6} rows  from {', '.join(entry['runs'])} (dev {scores})")
    missing = [name for name in SERVER_FILES if name not in files]
    if missing:
        print(
            f"not in the zip (no test predictions): {', '.join(missing)}; the GLUE server needs all "
            f"{len(SERVER_FILES)} files",
            file=sys.stderr,
        )
    print(f"wrote {args.out} ({len(files)} files)")
    return 0


def _run_other_kind(
    args: argparse.Namespace, own: dict[str, Any], common: dict[str, Any], recipe: dict[str, Any]
) -> int:
    """Tagging and SQuAD: their own data, model heads and files in the one sweep loop, the same recipe options."""
    if args.shard != (0, 1):
        raise ElectraError(f"--shard is for GLUE and your own data; --kind {args.kind} runs its seeds in one process")
    if args.test_predictions != "best":
        raise ElectraError(f"--test-predictions is for GLUE and your own data; --kind {args.kind} predicts every run's")
    runs = {"runs": 1 if args.runs is None else args.runs, "seed": args.seed, **common, **recipe}
    if args.kind == "tagging":
        from electra.finetune.tagging.finetune import finetune_tagging

        columns = {"token_column": args.token_column, "tag_column": args.tag_column}
        results = finetune_tagging(args.model, args.out, **own, **columns, **runs)
    else:
        if own.pop("test") is not None:
            raise ElectraError("--test is not used for qa: SQuAD predictions are written for --dev")
        from electra.finetune.qa.finetune import finetune_squad

        results = finetune_squad(args.model, args.out, **own, version=args.qa_version, **runs)
    print(json.dumps(results.get("median", results), indent=2))
    return 0
