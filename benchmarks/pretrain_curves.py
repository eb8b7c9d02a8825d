"""Plot a pretraining run's curves from RUN_DIR/metrics.jsonl and print the numbers for BENCHMARKS.md.

    python benchmarks/pretrain_curves.py /work/runs/tiny_prose docs/tiny_pretrain_curves.png

Panels: training loss (total, generator, 50 x discriminator); held-out generator accuracy (argmax and sampled);
held-out discriminator accuracy against the all-original baseline (1 - replaced fraction) and AUC.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(run_dir: str, out: str) -> None:
    records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("split", "train") == "train"]
    evals = [r for r in records if r.get("split") == "eval"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    steps = [r["step"] for r in train]
    axes[0].plot(steps, [r["loss"] for r in train], label="total")
    axes[0].plot(steps, [r["gen_loss"] for r in train], label="generator MLM")
    axes[0].plot(steps, [50 * r["disc_loss"] for r in train], label="50 x discriminator")
    axes[0].set(title="training loss", xlabel="step")
    e_steps = [r["step"] for r in evals]
    axes[1].plot(e_steps, [r["gen_accuracy"] for r in evals], "o-", label="MLM accuracy (argmax)")
    axes[1].plot(e_steps, [r["sampled_accuracy"] for r in evals], "s-", label="sampled-token accuracy")
    axes[1].set(title="held-out generator", xlabel="step")
    axes[2].plot(e_steps, [r["disc_accuracy"] for r in evals], "o-", label="accuracy")
    axes[2].plot(e_steps, [1 - r["replaced_fraction"] for r in evals], "k--", label="all-original baseline")
    axes[2].plot(e_steps, [r["disc_auc"] for r in evals], "s-", label="AUC")
    axes[2].set(title="held-out discriminator", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    print("| step | gen acc | sampled acc | disc acc | all-original | disc AUC | precision | recall |")
    print("|---|---|---|---|---|---|---|---|")
    for r in evals:
        print(
            f"| {r['step']} | {r['gen_accuracy']:.3f} | {r['sampled_accuracy']:.3f} | {r['disc_accuracy']:.4f} | "
            f"{1 - r['replaced_fraction']:.4f} | {r['disc_auc']:.3f} | {r['disc_precision']:.3f} | "
            f"{r['disc_recall']:.3f} |"
        )
    speed = [r["seqs_per_s"] for r in train]
    print(
        f"median {sorted(speed)[len(speed) // 2]:.1f} sequences/s, "
        f"{sorted(r['tokens_per_s'] for r in train)[len(speed) // 2]:.0f} tokens/s"
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
