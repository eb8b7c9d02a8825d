"""`electra report`, `probe` and `diagnose`: their options and the calls into the analysis modules."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from electra.report import STATS


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    paths = "pretraining run directories, finetuning sweep directories (electra finetune --out), or directories "
    parser.add_argument("paths", nargs="+", metavar="PATH", help=paths + "that hold them")
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder (index.md, report.json, PNGs)")
    parser.add_argument(
        "--stat",
        choices=STATS,
        default="median",
        help="statistic over finetuning runs shown per task and averaged (default: median, as the official README)",
    )


def run_report(args: argparse.Namespace) -> int:
    from electra.api import report as write_report

    text = write_report(args.paths, args.out, args.stat)
    print(text)
    print(f"report written to {Path(args.out) / 'index.md'}")
    return 0


def _add_models_and_texts(parser: argparse.ArgumentParser, option: str, texts: str, glue: str) -> None:
    """The models, where their texts come from (`option`), the GLUE data for glue:<task>, the checkpoint."""
    models = "pretraining run directories, HF-format directories or hub ids"
    parser.add_argument("models", nargs="+", metavar="MODEL", help=models)
    parser.add_argument(option, default="builtin", metavar="SET", help=texts)
    parser.add_argument("--glue-dir", metavar="DIR", help=glue)
    parser.add_argument("--checkpoint", default="latest", help="for run directories: latest, 25%%, step_N, ...")


def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    sets = "builtin (default; no download), glue:<task> (with --glue-dir), or a CSV/TSV/JSONL file with text and label "
    sets += "columns"
    _add_models_and_texts(parser, "--probe", sets, "GLUE data for a glue:<task> probe (default: the hub)")
    parser.add_argument(
        "--random-seeds",
        type=int,
        default=3,
        metavar="N",
        help="random initialisations to compare with (default 3): a model is above random weights only when its "
        "best probe beats all of theirs by more than the test set's noise",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_probe(args: argparse.Namespace) -> int:
    from electra.probe import probe_models

    rows = probe_models(args.models, args.probe, args.glue_dir, args.checkpoint, args.random_seeds)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["model"]) for r in rows)
    print(f"linear probe {args.probe}: test accuracy on frozen final-layer features")
    print(f"{'model':<{width}}  [CLS]   mean   best against random weights")
    for r in rows:
        line = f"{r['model']:<{width}}  {r['probe_cls']:.3f}  {r['probe_mean']:.3f}"
        if "seeds" in r:
            line += f"  mean of {r['seeds']} seeds; best {r['best_min']:.3f}-{r['best_max']:.3f}"
        elif "against_random" in r:
            line += f"  {r['against_random']}"
        print(line)
    return 0


def add_diagnose_arguments(parser: argparse.ArgumentParser) -> None:
    texts = "where the texts come from: a probe set (builtin, glue:<task>, or a CSV/TSV/JSONL file)"
    _add_models_and_texts(parser, "--texts", texts, "GLUE data for --texts glue:<task>")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run_diagnose(args: argparse.Namespace) -> int:
    from electra.diagnose import diagnose_models, format_rows

    rows = diagnose_models(args.models, args.texts, args.glue_dir, args.checkpoint)
    print(json.dumps(rows, indent=2) if args.json else format_rows(rows))
    return 0
