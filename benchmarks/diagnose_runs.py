"""The representations of pretraining runs over training, beside random weights: a table and a plot.

For every kept checkpoint (6.25 ... 100 %) of each run: the linear probes (`electra.probe`) and the statistics of
`electra.diagnose` on held-out text (effective rank of the final layer, mean cosine between the final token states
of a sequence, attention entropy of the first layer, word-embedding norm). Step 0 of every run is the random
initialisation of its shape. Used for docs/pretraining.md, "Why short runs finetune worse than random weights".

    PYTHONPATH=src python benchmarks/diagnose_runs.py RUN [RUN ...] --data DATA_DIR --out docs/diagnosis.png \
        [--probe builtin glue:sst2 --glue-dir ../shared/data/glue] [--table results.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from electra.checkpoint import CHECKPOINTS, INDEX, load_run
from electra.data import PretrainLoader
from electra.diagnose import representation_stats
from electra.probe import load_probe_set, probe, random_encoder

PANELS = (
    ("effective_rank", "effective rank of the final layer's states"),
    ("token_cosine", "mean cosine between token states (final layer)"),
    ("attention_entropy_1", "attention entropy, layer 1 (nats)"),
    ("probe", "linear probe, best of [CLS] / mean-pooled"),
)


def encoder_of(model):
    return model.discriminator.electra if hasattr(model, "discriminator") else model.generator.electra


def measure(encoder, tokenizer, batch, probe_sets) -> dict[str, float]:
    stats = representation_stats(encoder, batch)
    row = {
        "effective_rank": stats["effective_rank"],
        "token_cosine": stats["layers"][-1]["token_cosine"],
        "attention_entropy_1": stats["layers"][0]["attention_entropy"],
        "word_norm": stats["word_norm_used"],
    }
    for probe_set in probe_sets:
        p = probe(encoder, tokenizer, probe_set)
        row[f"{probe_set.name} cls"], row[f"{probe_set.name} mean"] = p["probe_cls"], p["probe_mean"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data", required=True, help="prepared data: its held-out examples are the text measured")
    parser.add_argument("--probe", nargs="+", default=["builtin"])
    parser.add_argument("--glue-dir")
    parser.add_argument("--out", required=True, help="PNG")
    parser.add_argument("--table", help="also write the numbers as markdown here")
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = next(iter(PretrainLoader(args.data, 32, seed=0).holdout(32)))
    probe_sets = [load_probe_set(p, args.glue_dir) for p in args.probe]
    results: dict[str, list[tuple[int, dict[str, float]]]] = {}
    for run in args.runs:
        name = Path(run).name
        index = json.loads((Path(run) / CHECKPOINTS / INDEX).read_text())
        model, cfg, tok = load_run(run, "latest")
        rows = [(0, measure(random_encoder(encoder_of(model).config, cfg.seed), tok, batch, probe_sets))]
        for label in sorted((k for k in index if k.endswith("%")), key=lambda k: float(k[:-1])):
            model, cfg, tok = load_run(run, label)
            step = int(index[label].removeprefix("step_"))
            rows.append((step, measure(encoder_of(model), tok, batch, probe_sets)))
            print(name, step, {k: round(v, 3) for k, v in rows[-1][1].items()}, flush=True)
        results[name] = rows
    plot(results, Path(args.out))
    if args.table:
        Path(args.table).write_text(table(results))


def plot(results, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 4), layout="constrained")
    axes = fig.subplots(1, len(PANELS))
    for ax, (key, title) in zip(axes, PANELS, strict=True):
        for i, (name, rows) in enumerate(results.items()):
            steps = [s for s, _ in rows]
            if key == "probe":
                values = [
                    max(v for k, v in r.items() if k.endswith((" cls", " mean")) and k.startswith("builtin"))
                    for _, r in rows
                ]
            else:
                values = [r[key] for _, r in rows]
            ax.plot(steps, values, "o-", color=f"C{i}", ms=3, lw=1, label=name)
            ax.axhline(values[0], color=f"C{i}", ls=":", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step (0 = random initialisation, dotted)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=110)


def table(results) -> str:
    keys = list(next(iter(results.values()))[0][1])
    lines = ["| run | step | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for name, rows in results.items():
        for step, r in rows:
            lines.append(f"| {name} | {step} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
