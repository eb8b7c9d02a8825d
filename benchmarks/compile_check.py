"""Does a `torch.compile` mode train exactly like eager? Run it where the mode matters (a GPU for CUDA graphs).

The same few training steps (the `tiny` shape, dropout off, fp32, random batches with some padding, a fixed seed)
are run once per mode, each in a fresh process, and the per-step losses are compared with eager's:

    python benchmarks/compile_check.py --modes default reduce-overhead [--scope model|parts] [--micro-batch 64]

A mode that fails prints its error instead of losses. Expect relative differences around 1e-7; 1e-3 or more means
the compiled step computes something else. The CUDA-graph modes need one micro-batch per step (`--micro-batch`
equal to `--batch`, the default), see `electra.train.step.check_compile_plan`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def run_mode(mode: str, steps: int, batch: int, micro: int | None, device: str, scope: str) -> list[float]:
    import torch

    from electra.config import preset
    from electra.train.bench import SingleProcessStep

    cfg = preset("tiny", batch_size=batch, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    run = SingleProcessStep(cfg, "fp32", None if mode == "eager" else mode, device, micro, scope)
    losses = []
    for step in range(steps):
        g = torch.Generator().manual_seed(step)
        ids = torch.randint(1000, cfg.model.vocab_size, (batch, cfg.max_length), generator=g)
        ids[:, 0], ids[:, -1] = 101, 102
        mask = torch.ones_like(ids)
        mask[::3, 3 * cfg.max_length // 4 :] = 0  # every third sequence padded
        b = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
        losses.append(run({k: v.to(run.info.device) for k, v in b.items()}, step).read()["loss"])
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["default", "reduce-overhead"])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--micro-batch", type=int, help="sequences per forward (default: the whole batch)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--scope", default="model", choices=("model", "parts"), help="what is compiled")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one mode and print its losses
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_mode(args.worker, args.steps, args.batch, args.micro_batch, args.device, args.scope)))
        return
    results = {}
    for mode in ["eager", *args.modes]:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            mode,
            "--steps",
            str(args.steps),
            "--batch",
            str(args.batch),
            "--device",
            args.device,
            "--scope",
            args.scope,
        ]
        if args.micro_batch:
            cmd += ["--micro-batch", str(args.micro_batch)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            error = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"{mode:28s} FAILED: {error}")
            continue
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        if mode == "eager":
            print(f"{'eager':28s} losses {results['eager'][0]:.6f} ... {results['eager'][-1]:.6f}")
        elif "eager" in results:
            rel = max(abs(a - b) / abs(b) for a, b in zip(results[mode], results["eager"], strict=True))
            print(f"{mode:28s} max relative difference from eager over {args.steps} steps: {rel:.2e}")


if __name__ == "__main__":
    main()
