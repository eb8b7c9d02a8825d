"""What a pretraining run prints: the header, a line per logged step (or a progress bar on a terminal), notes."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import torch

from electra import dist
from electra.flops import format_flops
from electra.optim import peak_lr_factor

if TYPE_CHECKING:
    from tqdm import tqdm

    from electra.config import PretrainConfig
    from electra.model import ELECTRA
    from electra.train.rundir import Setup
    from electra.train.step import BatchPlan, Precision


def note_thread_change(setup: Setup, info: dist.DistInfo) -> None:
    """On a CPU, a resumed run repeats the uninterrupted one bit for bit only with the same number of threads."""
    saved = setup.run_meta.get("environment", {}).get("cpu_threads")
    now = torch.get_num_threads()
    if setup.resume_from is not None and info.device.type == "cpu" and saved not in (None, now):
        dist.print0(
            f"  note: this run was trained with {saved} CPU threads and resumes with {now}; on a CPU the "
            f"result is bit-exact only with the same count (OMP_NUM_THREADS={saved})",
            flush=True,
        )


def progress_bar(total: int, initial: int, enabled: bool) -> tqdm | None:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr, disable=None
    )  # disable=None: off when stderr is not a terminal


def say(bar: tqdm | None, text: str) -> None:
    if bar is not None and not bar.disable:
        bar.write(text)
    else:
        dist.print0(text, flush=True)


def report_step(bar: tqdm | None, r: dict[str, Any], step: int, total: int) -> None:
    if bar is not None and not bar.disable:
        bar.update(step - bar.n)
        shown = {"loss": f"{r['loss']:.3f}", "gen": f"{r['gen_accuracy']:.3f}", "disc": f"{r['disc_accuracy']:.3f}"}
        bar.set_postfix(**shown, seq_s=f"{r['seqs_per_s']:.1f}", refresh=False)
    else:
        dist.print0(
            f"step {step}/{total}  loss {r['loss']:.4f}  gen {r['gen_loss']:.3f}  disc {r['disc_loss']:.4f}"
            f"  lr {r['lr']:.3g}  {r['seqs_per_s']:.1f} seq/s  {r['tokens_per_s']:.0f} tok/s  "
            f"{format_flops(r['flops_per_s'])}FLOP/s",
            flush=True,
        )


def print_header(
    cfg: PretrainConfig,
    plan: BatchPlan,
    precision: Precision,
    info: dist.DistInfo,
    model: ELECTRA,
    flops_per_seq: float,
    step: int,
    setup: Setup,
) -> None:
    from electra.flops import count_parameters

    what = f"resuming from {setup.resume_from} at step {step}" if setup.resume_from else "starting"
    dist.print0(
        f"pretrain: {what}; {count_parameters(model) / 1e6:.2f}M parameters, {info.world_size} process(es) on "
        f"{info.device.type}, {precision.name}, {'compile ' + setup.opts.compile if setup.opts.compile else 'eager'}\n"
        f"  global batch {plan.global_batch} = {info.world_size} x {plan.accum} micro-batch(es) of {plan.micro}, "
        f"length {cfg.max_length}, {cfg.max_steps} steps\n"
        f"  learning rate {cfg.learning_rate:g} ({cfg.schedule} schedule), warm-up {cfg.warmup_steps} steps, peak "
        f"{cfg.learning_rate * peak_lr_factor(cfg.max_steps, cfg.warmup_steps, cfg.lr_decay_power, cfg.schedule):.3g}\n"
        f"  {format_flops(flops_per_seq)}FLOP per sequence (paper count: forward + backward = 2 x forward); "
        f"total {format_flops(flops_per_seq * cfg.batch_size * cfg.max_steps)}FLOP",
        flush=True,
    )
    if info.device.type == "cuda" and not setup.opts.compile:
        dist.print0(
            "  (on a GPU, --compile reduce-overhead trains small models several times faster: "
            "docs/pretraining.md, 'Throughput and FLOPs')",
            flush=True,
        )
