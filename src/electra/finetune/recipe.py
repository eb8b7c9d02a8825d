"""The finetuning recipe every task shares (paper Table 7, docs/faithfulness.md §6): the optimizer with layer-wise
learning-rate decay, and the training loop."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from electra.config import FinetuneConfig
from electra.finetune.layer_decay import layer_lr_multipliers
from electra.optim import AdamW, lr_factor, param_groups, set_group_lrs

if TYPE_CHECKING:
    from tqdm import tqdm


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast on any device (CPUs with bf16 instructions, e.g. AVX-512-BF16 or AMX, run it faster than fp32;
    CPUs without them run it slower)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def train_steps(n_train: int, cfg: FinetuneConfig) -> int:
    """T = ceil(n / batch) * epochs (docs/faithfulness.md §6.2: the train set padded to a whole number of batches)."""
    return math.ceil(n_train / cfg.batch_size) * cfg.epochs


def finetune_optimizer(
    model: torch.nn.Module,
    num_layers: int,
    cfg: FinetuneConfig,
    device: torch.device,
    head_prefixes: tuple[str, ...] = ("classifier.",),
) -> AdamW:
    """The recipe's Adam with layer-wise decay: encoder parameters `electra.*`, the head's under `head_prefixes`."""
    names = [n for n, _ in model.named_parameters()]
    scale = layer_lr_multipliers(names, num_layers, cfg.layerwise_lr_decay, cfg.layer_decay_mode, head_prefixes)
    groups = param_groups(model.named_parameters(), cfg.weight_decay, lr_scale=scale.__getitem__)
    return AdamW(
        groups,
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_epsilon,
        weight_decay=cfg.weight_decay,
        bias_correction=cfg.adam_bias_correction,
        fused=device.type == "cuda",
    )


def reduce_losses(losses: torch.Tensor, cfg: FinetuneConfig) -> torch.Tensor:
    """The batch loss from per-example losses: their sum (official) or mean (`loss_reduction`)."""
    return losses.sum() if cfg.loss_reduction == "sum" else losses.mean()


def group_order(order: list[int], lengths: Sequence[int], batch_size: int, groups: int = 50) -> list[int]:
    """`order` regrouped so that a batch holds rows of similar length, as `transformers`' `group_by_length`: each
    run of `groups` batches is sorted longest first (stable), so batches stay random in their mix of examples but pad
    little."""
    size = groups * batch_size
    return [i for s in range(0, len(order), size) for i in sorted(order[s : s + size], key=lambda i: -lengths[i])]


def fit(
    model: torch.nn.Module,
    opt: AdamW,
    n: int,
    cfg: FinetuneConfig,
    seed: int,
    device: torch.device,
    step_losses: Callable[[list[int]], tuple[torch.Tensor, torch.Tensor, int]],
    progress: tqdm | None = None,
    describe: dict[str, str] | None = None,
    lengths: Sequence[int] | None = None,
) -> list[float]:
    """The loop of every task: `cfg.epochs` seeded passes over `n` rows in batches of `cfg.batch_size`, warm-up
    and decay, clipping, one optimizer step per batch. `step_losses(rows)` returns the loss to minimise, its summed
    per-row value and the rows (or words) it covers; returns each epoch's mean. With `cfg.group_by_length` and the
    rows' `lengths`, each epoch's order is regrouped by `group_order`."""
    total = train_steps(n, cfg)
    warmup = cfg.warmup_proportion * total
    shuffle = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    step = 0
    epoch_losses = []
    model.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=shuffle).tolist()  # a new order every epoch
        if cfg.group_by_length and lengths is not None:
            order = group_order(order, lengths, cfg.batch_size)
        loss_sum, count = torch.zeros((), device=device), 0
        for start in range(0, n, cfg.batch_size):
            set_group_lrs(opt, cfg.learning_rate * lr_factor(step, total, warmup, 1.0, cfg.schedule))
            loss, summed, k = step_losses(order[start : start + cfg.batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            loss_sum += summed
            count += k
            step += 1
            if progress is not None:
                progress.update(1)
                if describe is not None and step % 20 == 1:  # (reading the loss waits for the GPU: not every step)
                    progress.set_postfix(**describe, seed=seed, loss=f"{summed.item() / max(k, 1):.3f}", refresh=False)
        epoch_losses.append(loss_sum.item() / max(count, 1))
    return epoch_losses
