"""`electra report PATH ... --out DIR`: tables and plots over pretraining runs and finetuning sweeps, written as
DIR/index.md, DIR/report.json and PNGs (docs/cli.md lists them); standard deviations are sample ones (ddof = 1)."""

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
