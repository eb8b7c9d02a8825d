"""`electra bench`: training throughput of a preset on this machine (random tokens, the real training step).

    electra bench --preset small --batch 128 --seq-len 128 --steps 20 --precision bf16 --compile reduce-overhead --json

Runs `step.train_step` (masking, generator, sampling, discriminator, backward, clipping, optimizer) on random
full-length sequences after a few warm-up steps, and reports sequences/s, tokens/s (positions processed),
achieved FLOP/s (paper count, see `electra.flops`) and peak memory (CUDA: allocated by PyTorch; CPU: the
process's peak resident set).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from electra import dist
from electra.config import PRESETS, PretrainConfig, add_config_arguments, overrides_from_args, preset
from electra.flops import format_flops, train_flops_per_sequence
from electra.model import ELECTRA, count_parameters
from electra.objective import SpecialIds
from electra.train.step import (
    COMPILE_SCOPES,
    StepResult,
    add_compile_argument,
    build_optimizer,
    check_compile_plan,
    choose_precision,
    compile_model,
    plan_batches,
    set_learning_rate,
    train_step,
)


class SingleProcessStep:
    """`step.train_step` on one process, set up as `electra pretrain` does (plan, precision, optimizer,
    compile mode), from weights initialised with `cfg.seed`. Call it with a batch and the step index."""

    def __init__(
        self,
        cfg: PretrainConfig,
        precision_name: str,
        compile_mode: str | None,
        device: str,
        micro_batch_size: int | None = None,
        compile_scope: str = "model",
    ):
        self.cfg = cfg
        self.info = dist.DistInfo(0, 1, 0, dist.pick_device(device))
        self.precision = choose_precision(precision_name, self.info.device)
        self.plan = plan_batches(cfg.batch_size, 1, micro_batch_size, cfg.max_length)
        check_compile_plan(compile_mode, self.plan)
        torch.manual_seed(cfg.seed)
        self.model = ELECTRA(cfg, SpecialIds()).to(self.info.device)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scaler = self.precision.scaler()
        self.cudagraphs = compile_model(self.model, compile_mode, compile_scope) if compile_mode else False
        self.halted = torch.zeros((), dtype=torch.bool, device=self.info.device)

    def __call__(self, batch: dict[str, torch.Tensor], step: int) -> StepResult:
        set_learning_rate(self.optimizer, self.cfg, step + 1)
        return train_step(
            self.model,
            self.model,
            self.optimizer,
            self.scaler,
            batch,
            step=step,
            cfg=self.cfg,
            plan=self.plan,
            info=self.info,
            precision=self.precision,
            cudagraphs=self.cudagraphs,
            halted=self.halted,
        )


def measure(
    cfg: PretrainConfig,
    steps: int,
    warmup: int,
    precision_name: str,
    compile_mode: str | None,
    device: str,
    micro_batch_size: int | None = None,
    compile_scope: str = "model",
) -> dict[str, float]:
    run = SingleProcessStep(cfg, precision_name, compile_mode, device, micro_batch_size, compile_scope)
    dev = run.info.device
    special = SpecialIds()
    g = torch.Generator().manual_seed(0)
    B, L = cfg.batch_size, cfg.max_length
    ids = torch.randint(max(special) + 1, cfg.model.vocab_size, (B, L), generator=g)
    ids[:, 0], ids[:, -1] = special.cls, special.sep
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    batch = {k: v.to(dev) for k, v in batch.items()}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for step in range(warmup + steps):
        if step == warmup:
            _sync(dev)
            start = time.perf_counter()
        run(batch, step)
    _sync(dev)
    elapsed = time.perf_counter() - start
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    seqs = steps * B / elapsed
    return {
        "tokens_per_s": seqs * L,
        "seqs_per_s": seqs,
        "peak_mem_mb": peak,
        "flops_per_s": seqs * train_flops_per_sequence(cfg),
        "params": count_parameters(run.model),
        "device": device_name(dev),
        "precision": run.precision.name,
        "compile": compile_mode or False,
        "compile_scope": compile_scope if compile_mode else None,
        "batch": B,
        "seq_len": L,
        "micro_batch": run.plan.micro,
        "steps": steps,
    }


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, choices=list(PRESETS))
    parser.add_argument("--batch", type=int, help="sequences per step (default: the preset's batch)")
    parser.add_argument("--seq-len", type=int, help="sequence length (default: the preset's max_length)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 3; 10 with --compile)")
    parser.add_argument("--micro-batch-size", type=int, help="gradient accumulation as in `electra pretrain`")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    add_compile_argument(parser)
    parser.add_argument(
        "--compile-scope",
        default="model",
        choices=COMPILE_SCOPES,
        help="what --compile compiles: the whole model forward (default), or the generator and "
        "discriminator only (losses and sampling eager)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"tokens_per_s": ..., "seqs_per_s": ..., "peak_mem_mb": ...} and more',
    )
    add_config_arguments(parser, PretrainConfig, type(PretrainConfig().model))


def run_bench(args: argparse.Namespace) -> int:
    overrides = overrides_from_args(args)
    if args.batch:
        overrides["batch_size"] = args.batch
    if args.seq_len:
        overrides["max_length"] = args.seq_len
    cfg = preset(args.preset, **overrides)
    warmup = args.warmup if args.warmup is not None else (10 if args.compile else 3)
    r = measure(
        cfg, args.steps, warmup, args.precision, args.compile, args.device, args.micro_batch_size, args.compile_scope
    )
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"{args.preset}: {r['params'] / 1e6:.1f}M parameters, batch {r['batch']} x {r['seq_len']}, "
            f"{r['precision']}{' + compile ' + r['compile'] if r['compile'] else ''} on {r['device']}\n"
            f"  {r['seqs_per_s']:.1f} sequences/s  {r['tokens_per_s']:.0f} tokens/s  "
            f"{format_flops(r['flops_per_s'])}FLOP/s (paper count)  peak memory {r['peak_mem_mb']:.0f} MB"
        )
    return 0
