"""The official optimizer and learning-rate schedule (spec §5).

AdamW without bias correction: m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
p <- p - lr * (m / (sqrt(v) + eps) + wd * p), with weight decay skipped for LayerNorm parameters and biases.
Schedule: lr_t = lr * (1 - min(t, T)/T)^power * min(1, t/W) -- the warmup multiplies the decayed rate and step 0
runs with lr 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch
from torch import nn

NO_DECAY = re.compile(r"LayerNorm|layer_norm|bias")


def lr_factor(
    step: int, total_steps: int, warmup_steps: float, power: float = 1.0, schedule: str = "official"
) -> float:
    """Multiplier of the base learning rate at (pre-increment) step t.

    official: (1 - min(t, T)/T)^power * min(1, t/W).
    warmup_then_decay (richarddwang/electra_pytorch): t/W during warmup, then (T - t)/(T - W) down to 0.
    """
    t, T, W = step, total_steps, warmup_steps
    if schedule == "official":
        decay = (1.0 - min(t, T) / T) ** power
        warm = min(1.0, t / W) if W > 0 else 1.0
        return decay * warm
    if schedule == "warmup_then_decay":
        if t < W:
            return t / W
        return max(0.0, (T - t) / max(T - W, 1e-12))
    raise ValueError(f"unknown schedule {schedule!r}")


def param_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    weight_decay: float,
    lr_scale: Callable[[str], float] | None = None,
) -> list[dict]:
    """Parameter groups: decay everything except names matching LayerNorm/layer_norm/bias (embeddings are
    decayed); `lr_scale(name)` optionally gives a per-parameter learning-rate multiplier (layer-wise decay).
    Shared parameters appear once."""
    groups: dict[tuple[float, float], dict] = {}
    seen: set[int] = set()
    for name, p in named_parameters:
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        wd = 0.0 if NO_DECAY.search(name) else weight_decay
        scale = lr_scale(name) if lr_scale else 1.0
        group = groups.setdefault((wd, scale), {"params": [], "names": [], "weight_decay": wd, "lr_scale": scale})
        group["params"].append(p)
        group["names"].append(name)
    return list(groups.values())


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay and, by default, no bias correction (the official AdamWeightDecay).

    `bias_correction=True` gives the usual bias-corrected step (richarddwang/electra_pytorch's alternative).
    The caller sets each group's `lr` every step (see `lr_factor`).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0,
                 bias_correction: bool = False):  # fmt: skip
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            grads, exp_avgs, exp_avg_sqs = [], [], []
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                # a plain number (a tensor in checkpoints of earlier versions): one tensor op per parameter per
                # step is what the launch-bound small models on GPUs cannot afford
                state["step"] = int(state["step"]) + 1
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)  # m <- b1 m + (1 - b1) g
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
            denom = torch._foreach_sqrt(exp_avg_sqs)
            lr = group["lr"]
            if group["bias_correction"]:
                step = float(self.state[params[0]]["step"])
                torch._foreach_div_(denom, (1 - beta2**step) ** 0.5)
                lr = lr / (1 - beta1**step)
            torch._foreach_add_(denom, group["eps"])
            update = torch._foreach_div(exp_avgs, denom)
            if group["weight_decay"]:
                # decoupled decay, scaled by the schedule's lr (not by the bias-corrected step size)
                torch._foreach_add_(update, params, alpha=group["weight_decay"] * group["lr"] / lr if lr else 0.0)
            torch._foreach_add_(params, update, alpha=-lr)
        return loss
