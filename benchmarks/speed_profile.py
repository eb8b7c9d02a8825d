"""What the CPU can say about the speed variants of `electra.fused` before a GPU times them (issue #49, item 2).

    PYTHONPATH=src python benchmarks/speed_profile.py [--batch 8] [--steps 2] [--json OUT.json]

ELECTRA-Small's shapes (vocabulary 30522, length 128) at a small batch, eager fp32 on the CPU, one warm-up step and
then `--steps` profiled steps of `train_step` per setting: the ATen operator calls per step (each is one or more GPU
kernel launches: the launch count the variants cut), the bytes the step allocates (torch.profiler's memory
accounting: a proxy for the bytes written), and, per part of the step, the share of the CPU time (indicative only:
CPU kernels are not GPU kernels), and the bytes of the tensors autograd keeps from the forward for the backward
(what a step holds at its peak, besides weights and optimizer state). Nothing here is a GPU measurement.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.profiler import ProfilerActivity, profile

from electra import dist, init
from electra.config import preset
from electra.fused import GraphUpdate, apply_speed_variants
from electra.objective import SpecialIds
from electra.train.step import BatchPlan, Precision, build_optimizer, train_step

SETTINGS = {
    "plain": {},
    "fused generator head": {"fused_generator_head": True},
    "graph optimizer (eager)": {"graph_optimizer": True},
}
HEAD_OPS = ("aten::log_softmax", "aten::_log_softmax", "aten::_log_softmax_backward_data", "aten::nll_loss")


def one_setting(batch: int, steps: int, variants: dict[str, bool]) -> dict[str, float]:
    cfg = preset("small", batch_size=batch, max_steps=10, warmup_steps=1)
    torch.manual_seed(0)
    model = init.build(cfg, SpecialIds())
    optimizer = build_optimizer(model, cfg)
    apply_speed_variants(model, optimizer, fused_generator_head=variants.get("fused_generator_head", False))
    update = None  # the graph optimizer eagerly: on the CPU, compiling it is the C++ build's minutes, not the step's
    if variants.get("graph_optimizer"):
        update = GraphUpdate(optimizer, cfg.max_grad_norm, None)
    info = dist.DistInfo(0, 1, 0, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, cfg.model.vocab_size, (batch, cfg.max_length), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    b = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}

    def step(i: int) -> dict[str, float]:
        for group in optimizer.param_groups:
            group["lr"] = 1e-4
        return train_step(
            model,
            model,
            optimizer,
            None,
            b,
            step=i,
            cfg=cfg,
            plan=BatchPlan(batch, 1, batch),
            info=info,
            precision=Precision("fp32", "cpu"),
            update=update,
        ).read()

    saved: dict[int, int] = {}  # storage -> bytes of the tensors autograd keeps for the backward

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        first = step(0)
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        rows = [step(1 + i) for i in range(steps)]
    elapsed = (time.perf_counter() - started) / steps
    events = prof.key_averages()
    calls = sum(e.count for e in events if e.key.startswith("aten::")) / steps
    allocated = sum(max(e.self_cpu_memory_usage, 0) for e in events) / steps
    total_us = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in ("aten::addmm", "aten::mm", "aten::bmm"))
    head = sum(e.self_cpu_time_total for e in events if e.key in HEAD_OPS)
    return {
        "seconds_per_step_cpu": elapsed,
        "aten_calls_per_step": calls,
        "allocated_mb_per_step": allocated / 2**20,
        "saved_for_backward_mb": sum(saved.values()) / 2**20,
        "matmul_share_cpu": matmul / total_us,
        "log_softmax_nll_share_cpu": head / total_us,
        "loss_step0": first["loss"],
        "gen_loss_step1": rows[0]["gen_loss"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    results = {name: one_setting(a.batch, a.steps, v) for name, v in SETTINGS.items()}
    for name, r in results.items():
        print(f"{name:26s} " + "  ".join(f"{k} {v:.4g}" for k, v in r.items()), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
