"""Pretrained encoders against random weights on GLUE-5: issue #12's acceptance check, from finetuning sweeps.

Each ENCODER argument is one or more `electra finetune --out` directories (comma-separated; their runs are pooled
by finetuning seed, e.g. seeds 0-2 from the protocol's sweep and 3-8 from a `--seed 3 --runs 6` sweep). Its runs
are cut into triples of consecutive seeds (0-2, 3-5, ...); a triple's per-task score is the median of its three
runs, and its GLUE-5 the mean of those medians over CoLA, SST-2, MRPC (acc), STS-B (Spearman) and RTE.

The baseline is random weights: either sweeps of `--model random:PRESET` (`--random DIR[,DIR]`), cut into triples
the same way, or recorded triples (`--random-json`; by default the nine triples of `tiny`'s shape with prose.txt's
8k vocabulary, benchmarks/data/random_tiny_v8k_triples.json). The check, per triple: GLUE-5 at or above random
weights' mean, and no task's median more than MARGIN points below random weights' mean for that task. The worst task
is marked "at chance" where the triple's runs rank that task's dev examples no better than chance (their median dev
ROC AUC inside the chance band, as `electra report` judges a sweep: electra.finetune.results.at_chance). Over the
encoders' first triples: the mean gain and Welch's t against random weights' triples.

    python benchmarks/glue_vs_random.py g5/fz_s0,gcola/fz_s0 g5/fz_s1 [--random g5/random] [--margin 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np
from scipy.stats import ttest_ind

from electra.finetune.results import at_chance, load_runs, run_dev_auc
from electra.finetune.tasks import TASKS

GLUE5 = ("cola", "sst2", "mrpc", "stsb", "rte")
DEFAULT_RANDOM = Path(__file__).parent / "data" / "random_tiny_v8k_triples.json"


def fail(message: str) -> NoReturn:
    print(f"glue_vs_random: {message}", file=sys.stderr)
    raise SystemExit(2)


def triples(dirs: str) -> tuple[dict[str, np.ndarray], dict[str, set[str]]]:
    """({'0-2': per-task medians, ...}, {'0-2': tasks whose runs rank at chance, ...}) for the complete triples of
    consecutive seeds in the pooled sweeps `dirs`."""
    scores: dict[str, dict[int, float]] = {name: {} for name in GLUE5}
    ranking: dict[str, dict[int, dict]] = {name: {} for name in GLUE5}
    for out in dirs.split(","):
        if not Path(out).is_dir():
            fail(f"{out}: not a directory (expected an `electra finetune --out` directory)")
        for name in GLUE5:
            for run in load_runs(out, TASKS[name]):
                scores[name][int(run["seed"])] = float(run["metrics"][TASKS[name].score])
                ranking[name][int(run["seed"])] = run_dev_auc(run, TASKS[name])
    seeds = sorted(set.intersection(*(set(s) for s in scores.values())))
    found: dict[str, np.ndarray] = {}
    chance: dict[str, set[str]] = {}
    for first in sorted({s - s % 3 for s in seeds}):
        group = [first, first + 1, first + 2]
        if all(s in seeds for s in group):
            key = f"{first}-{first + 2}"
            found[key] = np.array([np.median([scores[n][s] for s in group]) for n in GLUE5])
            chance[key] = {n for n in GLUE5 if triple_at_chance([ranking[n][s] for s in group])}
    if not found:
        fail(f"{dirs}: no complete triple of finetuning seeds with all of {', '.join(GLUE5)}")
    return found, chance


def triple_at_chance(ranking: list[dict]) -> bool:
    """Whether runs with these dev AUC records rank at chance, judged as `electra report` judges a whole sweep."""
    aucs = [r["dev_auc"] for r in ranking if r.get("dev_auc") is not None]
    band = next((r["dev_auc_chance_band"] for r in ranking if r.get("dev_auc_chance_band")), None)
    return bool(aucs) and at_chance({"dev_auc": {"median": float(np.median(aucs))}, "dev_auc_chance_band": band})


def random_triples(args: argparse.Namespace) -> dict[str, np.ndarray]:
    if args.random:
        pooled: dict[str, np.ndarray] = {}
        for dirs in args.random:
            pooled.update({f"{dirs} {k}": v for k, v in triples(dirs)[0].items()})
        return pooled
    record = json.loads(Path(args.random_json).read_text())
    if tuple(record["tasks"]) != GLUE5:
        fail(f"{args.random_json}: tasks {record['tasks']}, expected {list(GLUE5)}")
    return {k: np.array(v, dtype=float) for k, v in record["triples"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("encoders", nargs="+", help="finetuning sweeps of one encoder each (DIR or DIR,DIR,...)")
    parser.add_argument("--random", nargs="+", help="finetuning sweeps of random weights (default: --random-json)")
    parser.add_argument("--random-json", default=str(DEFAULT_RANDOM), help="recorded random-weights triples")
    parser.add_argument("--margin", type=float, default=2.0, help="points a task's median may fall below random")
    args = parser.parse_args()

    encoders = {dirs: triples(dirs) for dirs in args.encoders}  # read everything before printing anything
    base = np.stack(list(random_triples(args).values()))
    base_mean, base_avg = base.mean(0), base.mean(1)
    header = "| encoder | seeds | " + " | ".join(TASKS[n].display for n in GLUE5) + " | GLUE-5 | worst task | item |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    firsts = []
    cells = passed = missed_at_chance = 0
    for dirs, (found, chance) in encoders.items():
        for i, (seeds, medians) in enumerate(found.items()):
            if i == 0:
                firsts.append(medians.mean())
            gap = medians - base_mean
            worst = int(np.argmin(gap))
            ok = medians.mean() >= base_avg.mean() and gap[worst] >= -args.margin
            cells, passed = cells + 1, passed + ok
            row = " | ".join(f"{v:.2f}" for v in medians)
            worst_cell = f"{TASKS[GLUE5[worst]].display} {gap[worst]:+.2f}"
            if GLUE5[worst] in chance[seeds]:
                worst_cell += " (at chance)"
                missed_at_chance += gap[worst] < -args.margin
            verdict = "yes" if ok else "no"
            print(f"| {dirs} | {seeds} | {row} | {medians.mean():.2f} | {worst_cell} | {verdict} |")
    row = " | ".join(f"{v:.2f}" for v in base_mean)
    spread = f"{base_avg.mean():.2f} (sd {base_avg.std(ddof=1):.2f})"
    print(f"| random weights, mean of {len(base)} triples | | {row} | {spread} | | |")
    firsts = np.array(firsts)
    print()
    print(f"first triples of {len(firsts)} encoder(s): GLUE-5 {firsts.mean():.2f}", end="")
    if len(firsts) > 1:
        print(f" (sd {firsts.std(ddof=1):.2f})", end="")
    print(f" against random weights' {base_avg.mean():.2f}: {firsts.mean() - base_avg.mean():+.2f}", end="")
    if len(firsts) > 1:
        print(f", Welch t {ttest_ind(firsts, base_avg, equal_var=False).statistic:.1f}", end="")
    item = f"the item (average >= random, no task more than {args.margin:g} below)"
    print(f"; {item} in {passed} of {cells} triples", end="")
    print(f" ({missed_at_chance} of the misses by a task at chance)" if cells > passed else "")


if __name__ == "__main__":
    main()
