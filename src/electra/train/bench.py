"""`electra bench`: training throughput of a preset on this machine, `step.train_step` on random full-length
sequences after warm-up steps: sequences/s, tokens/s, FLOP/s (paper count, `electra.flops`) and peak memory."""

from __future__ import annotations

import resource
import time

import torch

from electra import dist, init
from electra.config import PretrainConfig
from electra.flops import count_parameters, train_flops_per_sequence
from electra.fused import apply_speed_variants
from electra.objective import SpecialIds
from electra.train import step as one_step


class SingleProcessStep:
    """`step.train_step` on one process set up as `electra pretrain` does; call it with a batch and the step index."""

    def __init__(
        self,
        cfg: PretrainConfig,
        precision_name: str,
        compile_mode: str | None,
        device: str,
        micro_batch_size: int | None = None,
        compile_scope: str = "model",
        fused_generator_head: bool = False,
        graph_optimizer: bool = False,
        gemm_epilogues: bool = False,
    ):
        self.cfg = cfg
        self.info = dist.DistInfo(0, 1, 0, dist.pick_device(device))
        self.precision = one_step.choose_precision(precision_name, self.info.device)
        self.plan = one_step.plan_batches(cfg.batch_size, 1, micro_batch_size, cfg.max_length)
        one_step.check_compile_plan(compile_mode, self.plan)
        torch.manual_seed(cfg.seed)
        self.model = init.build(cfg, SpecialIds()).to(self.info.device)
        self.optimizer = one_step.build_optimizer(self.model, cfg)
        self.scaler = self.precision.scaler()
        cudagraphs = False
        if compile_mode:
            cudagraphs = one_step.compile_model(self.model, compile_mode, compile_scope, gemm_epilogues)
        halted = torch.zeros((), dtype=torch.bool, device=self.info.device)
        update = apply_speed_variants(
            self.model, self.optimizer, fused_generator_head=fused_generator_head, graph_optimizer=graph_optimizer,
            compile_mode=compile_mode, gradient_scaler=self.scaler is not None, max_grad_norm=cfg.max_grad_norm,
            gemm_epilogues=gemm_epilogues,
        )  # fmt: skip
        self.options = dict(cfg=cfg, plan=self.plan, info=self.info, precision=self.precision)
        self.options.update(cudagraphs=cudagraphs, halted=halted, update=update)

    def __call__(self, batch: dict[str, torch.Tensor], step: int) -> one_step.StepResult:
        one_step.set_learning_rate(self.optimizer, self.cfg, step + 1)
        return one_step.train_step(
            self.model, self.model, self.optimizer, self.scaler, batch, step=step, **self.options
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
    fused_generator_head: bool = False,
    graph_optimizer: bool = False,
    gemm_epilogues: bool = False,
) -> dict[str, float]:
    """Time `steps` training steps after `warmup` untimed ones (the options as `electra bench` names them)."""
    run = SingleProcessStep(
        cfg,
        precision_name,
        compile_mode,
        device,
        micro_batch_size,
        compile_scope,
        fused_generator_head,
        graph_optimizer,
        gemm_epilogues,
    )
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
        "fused_generator_head": fused_generator_head,
        "graph_optimizer": graph_optimizer,
        "gemm_epilogues": gemm_epilogues,
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
