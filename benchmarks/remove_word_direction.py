"""A pretraining checkpoint with the top direction of its word table projected out, for finetuning.

`ELECTRA.remove_top_word_direction` on the run's checkpoint: W <- W - (W u) u^T, u the table's top
right-singular direction (in short `tiny` runs the word-frequency direction pretraining added; docs/pretraining.md,
"What `tiny` learns in 2,000 steps"). Everything else is copied as it is, without the optimizer state, so that
`electra finetune --model OUT` finetunes it like any checkpoint directory. For runs made before the `tiny` preset
applied this itself on loading (`remove_top_word_direction`). The fifteenth round of
benchmarks/results/small_budget_cpu_2026-11-29.md used it:

    PYTHONPATH=src python benchmarks/remove_word_direction.py runs/tiny_s1 runs/tiny_s1_nofreq
    electra finetune --model runs/tiny_s1_nofreq --tasks cola,sst2,mrpc,stsb,rte --glue-dir ../shared/data/glue \\
        --runs 3 --max-train-examples 2000 --epochs 3 --batch-size 16 --out glue_nofreq
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from safetensors.torch import save_model

from electra import init
from electra.checkpoint import load_run, resolve_checkpoint
from electra.io import write_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a pretraining run directory")
    parser.add_argument("out", help="the new checkpoint directory")
    parser.add_argument("--checkpoint", default="latest", help="latest (default), a kept fraction or step_N")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    args = parser.parse_args()
    model, cfg, _ = load_run(args.run, args.checkpoint)
    if cfg.remove_top_word_direction:
        raise SystemExit(f"{args.run} already has remove_top_word_direction: its encoder loads without the direction")
    removed = init.remove_top_word_direction(model)
    source = resolve_checkpoint(Path(args.run), args.checkpoint)

    def write(tmp: Path) -> None:
        shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("optimizer.pt"))
        save_model(model, str(tmp / "model.safetensors"))

    write_dir(args.out, write, args.force, source=args.run, source_name="the run")
    print(f"{args.out}: removed {removed:.1%} of the word table's squared norm (its top direction)")


if __name__ == "__main__":
    main()
