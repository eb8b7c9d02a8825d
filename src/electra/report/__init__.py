"""`electra report PATH ... --out DIR`: tables and plots over pretraining runs and GLUE finetuning sweeps.

A PATH is a pretraining run directory (it has `metrics.jsonl`), a finetuning sweep (`results.json` or
`<task>/run_<seed>/metrics.json`), or a directory holding such directories side by side. DIR receives:

    index.md                 the tables below and the plots, in reading order
    report.json              every number of the tables
    pretrain_loss.png        loss, generator MLM loss, discriminator loss over steps (train; held-out as dots)
    pretrain_accuracy.png    generator and discriminator accuracy (train and held-out), held-out AUC, precision,
                             recall
    pretrain_probe.png       the linear probe at each evaluation, with its random-weights and majority lines and
                             the band around random weights that the findings call level
    glue.png                 per-task dev score of each sweep, error bars = std over finetuning runs

The report opens with findings in words: the discriminator's regime, the probe against random weights, runs that
predicted one class, each sweep against the majority class and against a `random:<preset>` sweep.

Tables (shaped like richarddwang/electra_pytorch's README): 1. GLUE dev per task, one row per sweep, with the
number of runs behind each cell; 2. the run statistics of every task (median, mean, std, max, min); 3. the
finetuning standard deviation per task; with two or more sweeps (e.g. one per pretraining seed) 4. pretraining
stability: mean, std, max and min of the sweeps' GLUE averages, and 5. the standard deviation of each task over
sweeps; and a summary of each pretraining run. Standard deviations are sample standard deviations (ddof = 1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from electra.errors import ElectraError
from electra.io import write_text
from electra.report.findings import build_report
from electra.report.markdown import markdown
from electra.report.plots import plot_accuracy, plot_glue, plot_losses, plot_probe
from electra.report.runs import STATS, discover


def write_report(paths: list[str | os.PathLike], out: str | os.PathLike, stat: str = "median") -> str:
    """Write DIR/index.md, DIR/report.json and the PNGs; return the markdown."""
    if stat not in STATS:
        raise ElectraError(f"--stat must be one of {', '.join(STATS)}, got {stat!r}")
    runs, sweeps = discover(paths)
    report = build_report(runs, sweeps, stat)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ElectraError(f"--out {out} is a file; expected a directory")
    out.mkdir(parents=True, exist_ok=True)
    images = []
    if any(r.train or r.eval for r in runs):
        plot_losses(runs, out / "pretrain_loss.png")
        plot_accuracy(runs, out / "pretrain_accuracy.png")
        images += ["pretrain_loss.png", "pretrain_accuracy.png"]
    if any(x.get("probe_cls") is not None for r in runs for x in r.eval):
        plot_probe(runs, out / "pretrain_probe.png")
        images.append("pretrain_probe.png")
    if any(g["scores"] for g in report["glue"]):
        plot_glue(report, out / "glue.png")
        images.append("glue.png")
    text = markdown(report, images)
    write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    write_text(out / "index.md", text)
    return text


__all__ = ["STATS", "build_report", "discover", "write_report"]
