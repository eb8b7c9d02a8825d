"""The official optimizer and learning-rate schedule (docs/faithfulness.md §5): AdamW without bias correction,
no weight decay on LayerNorm parameters and biases; lr_t = lr * (1 - min(t, T)/T)^power * min(1, t/W)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from torch.optim.optimizer import ParamsT

NO_DECAY = re.compile(r"LayerNorm|layer_norm|bias")


def lr_factor(
    step: int, total_steps: int, warmup_steps: float, power: float = 1.0, schedule: str = "official"
) -> float:
    """Multiplier of the base learning rate at (pre-increment) step t: official (1 - min(t, T)/T)^power *
    min(1, t/W); warmup_then_decay (richarddwang/electra_pytorch) t/W, then (T - t)/(T - W) down to 0."""
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


def peak_lr_factor(total_steps: int, warmup_steps: float, power: float = 1.0, schedule: str = "official") -> float:
    """The largest `lr_factor` over the run. It rises until the end of the warm-up; the official product
    (1 - t/T)^p * t/W can peak earlier, at t = T / (p + 1), when the warm-up is long: check the steps around both."""
    T = total_steps
    points = (warmup_steps, T / (power + 1))
    steps = {min(T - 1, max(0, int(x) + d)) for x in points for d in (0, 1)}
    return max(lr_factor(t, T, warmup_steps, power, schedule) for t in steps)


def param_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    weight_decay: float,
    lr_scale: Callable[[str], float] | None = None,
) -> list[dict]:
    """Parameter groups: decay all but LayerNorm/layer_norm/bias names, shared parameters once; `lr_scale(name)`
    optionally gives a per-parameter learning-rate multiplier (layer-wise decay)."""
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


def set_group_lrs(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's learning rate: `lr` times the group's `lr_scale` (layer-wise decay; 1 when absent)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay and, by default, no bias correction (the official AdamWeightDecay); the
    caller sets each group's `lr` every step. `fused=True` uses PyTorch's fused AdamW kernel, which always corrects
    bias: without bias correction it is given the step 2^40, for which 1 - b^t is exactly 1 in floating point."""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        bias_correction: bool = False,
        fused: bool = False,
    ):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction)
        super().__init__(params, defaults)
        self.fused = fused
        if fused:
            tensors = [p for group in self.param_groups for p in group["params"]]
            kinds = {(p.device, p.dtype) for p in tensors}
            if len(kinds) > 1 or any(not p.is_floating_point() for p in tensors):
                raise ValueError(f"fused AdamW needs floating-point parameters of one dtype on one device: {kinds}")

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None, found_inf: torch.Tensor | None = None) -> float | None:
        """One update; a nonzero 0-d `found_inf` skips it (on the device for the fused path, so the host never
        waits). Either way the step counters advance."""
        loss = closure() if closure is not None else None
        skip = found_inf is not None and not self.fused and bool(found_inf)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
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
            if skip:
                continue
            step = self.state[params[0]]["step"]
            if self.fused:
                self._fused_update(group, params, grads, exp_avgs, exp_avg_sqs, step, found_inf)
            else:
                self._foreach_update(group, params, grads, exp_avgs, exp_avg_sqs, step)
        return loss

    @staticmethod
    def _foreach_update(
        group: dict[str, Any],
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        exp_avgs: list[torch.Tensor],
        exp_avg_sqs: list[torch.Tensor],
        step: int,
    ) -> None:
        beta1, beta2 = group["betas"]
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)  # m <- b1 m + (1 - b1) g
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(exp_avg_sqs)
        lr = group["lr"]
        if group["bias_correction"]:
            torch._foreach_div_(denom, (1 - beta2**step) ** 0.5)
            lr = lr / (1 - beta1**step)
        torch._foreach_add_(denom, group["eps"])
        update = torch._foreach_div(exp_avgs, denom)
        if group["weight_decay"]:
            # decoupled decay, scaled by the schedule's lr (not by the bias-corrected step size)
            torch._foreach_add_(update, params, alpha=group["weight_decay"] * group["lr"] / lr if lr else 0.0)
        torch._foreach_add_(params, update, alpha=-lr)

    @staticmethod
    def _fused_update(
        group: dict[str, Any],
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        exp_avgs: list[torch.Tensor],
        exp_avg_sqs: list[torch.Tensor],
        step: int,
        found_inf: torch.Tensor | None,
    ) -> None:
        # the kernel: p <- p (1 - lr wd); then p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        t = torch.full((), float(step) if group["bias_correction"] else 2.0**40, device=params[0].device)
        beta1, beta2 = group["betas"]
        hyper = {"lr": group["lr"], "beta1": beta1, "beta2": beta2, "weight_decay": group["weight_decay"]}
        hyper.update(eps=group["eps"], amsgrad=False, maximize=False)
        found = None if found_inf is None else found_inf.float()
        torch._fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, [], [t] * len(params), **hyper, found_inf=found)
