"""Speed variants of the pretraining step that compute what the paper's model (`electra.model`) and the official
optimizer (`electra.optim`) compute, with fewer passes through memory or fewer kernel launches. Each is off by
default and switched on by a run option (`--fused-generator-head`, `--graph-optimizer`, `--gemm-epilogues`);
tests/test_speed_variants.py holds each to the losses and weights of the plain path.

- `fuse_generator_head`: the generator's MLM head over the masked slots, its loss, argmax and Gumbel sampling in
  one pass over the vocabulary per chunk of slots (`FusedMLMHead`), never holding the [slots x vocabulary] logits,
  log-probabilities or their gradient whole from the forward to the backward, which recomputes each chunk's
  log-softmax from the saved hidden states.
- `GraphUpdate`: gradient clipping and the AdamW update as one tensor-only function (the learning rate and step
  a device tensor, the non-finite skip on the device), which `torch.compile` captures as one graph -- with
  reduce-overhead, one CUDA graph replay per step instead of a few dozen launches.
- `compile_options(mode, gemm_epilogues=True)`: the compiled model with inductor's own GEMM kernels where they are
  faster, the bias, GELU, dropout and residual fused into them: fewer, larger kernels for the small products.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from electra import objective as obj
from electra.config import PretrainConfig
from electra.errors import ElectraError
from electra.model import ELECTRA
from electra.optim import AdamW

CHUNK_ELEMENTS = 2**24  # slots x vocabulary entries per chunk of the fused head (64 MB of fp32 logits)


def chunk_rows(vocab_size: int, elements: int = CHUNK_ELEMENTS) -> int:
    """Slots per chunk: as many as keep one chunk's logits within `elements` entries (at least 1)."""
    return max(1, elements // vocab_size)


class FusedMLMHead(torch.autograd.Function):
    """nll, argmax and Gumbel sample of every slot from h (S, E), the tied output layer (V, E) and bias (V,), chunk
    by chunk of slots. Per chunk the forward computes the logits once and reads them for the log-softmax, the argmax
    and the sample, and keeps nothing of them; the backward recomputes the chunk's log-softmax and accumulates the
    gradients of h, the table and the bias. The nll is F.cross_entropy's (label smoothing included) and the sample
    `objective.sample_replacements`' (gumbel), operation by operation; so is the gradient, but for the sums over
    chunks (the table's and the bias's gradients add one chunk's at a time)."""

    @staticmethod
    def forward(
        ctx: Any,  # noqa: ANN401  (torch's autograd context)
        h: Tensor,
        weight: Tensor,
        bias: Tensor,
        targets: Tensor,
        noise: Tensor | None,
        disallow: Tensor | None,
        temperature: float,
        smoothing: float,
        rows: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        S, V = h.shape[0], weight.shape[0]
        nll = h.new_empty(S)
        predicted = torch.empty(S, dtype=torch.long, device=h.device)
        sampled = torch.zeros(S, dtype=torch.long, device=h.device)
        for start in range(0, S, rows):
            c = slice(start, min(start + rows, S))
            logits = F.linear(h[c], weight, bias)  # (rows, V)
            log_probs = logits.log_softmax(-1)
            picked = -log_probs.gather(1, targets[c, None]).squeeze(1)  # (F.cross_entropy's operations, in order)
            nll[c] = picked if not smoothing else (1 - smoothing) * picked + -log_probs.sum(-1) * (smoothing / V)
            predicted[c] = logits.argmax(-1)
            if noise is not None:
                scaled = logits / temperature
                if disallow is not None:
                    scaled = scaled - 1000.0 * F.one_hot(disallow[c], scaled.shape[-1]).to(scaled.dtype)
                sampled[c] = (scaled - torch.log(-torch.log(noise[c] + 1e-9) + 1e-9)).argmax(-1)
        ctx.save_for_backward(h, weight, bias, targets)
        ctx.smoothing, ctx.rows = smoothing, rows
        ctx.mark_non_differentiable(predicted, sampled)
        return nll, predicted, sampled

    @staticmethod
    def backward(ctx: Any, grad_nll: Tensor, *_: Any) -> tuple[Tensor | None, ...]:  # noqa: ANN401
        h, weight, bias, targets = ctx.saved_tensors
        eps, rows, S, V = ctx.smoothing, ctx.rows, h.shape[0], weight.shape[0]
        grad_h, grad_w, grad_b = torch.empty_like(h), None, None
        for start in range(0, S, rows):
            c = slice(start, min(start + rows, S))
            # the gradient F.cross_entropy's backward gives the log-softmax, then log_softmax's own backward
            log_probs = F.linear(h[c], weight, bias).log_softmax(-1)
            gn = grad_nll[c, None]
            grad = torch.zeros_like(log_probs).scatter_(1, targets[c, None], -(gn * (1 - eps)) if eps else -gn)
            if eps:
                grad = grad + (-(gn * (eps / V))).expand_as(grad)
            g = torch._log_softmax_backward_data(grad, log_probs, 1, log_probs.dtype)
            grad_h[c] = g @ weight
            grad_w = g.t() @ h[c] if grad_w is None else grad_w.addmm_(g.t(), h[c])
            grad_b = g.sum(0) if grad_b is None else grad_b.add_(g.sum(0))
        return grad_h, grad_w, grad_b, None, None, None, None, None, None


def fused_generate(
    model: ELECTRA,
    masked: obj.Masked,
    mask: Tensor,
    types_: Tensor,
    rng: torch.Generator | None,
    total: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """`ELECTRA.generate` with the head, loss, argmax and sampling fused (`FusedMLMHead`): the same noise drawn
    from `rng` at the same point, the same loss, argmax and samples."""
    cfg, (B, N), V = model.cfg, masked.positions.shape, model.cfg.model.vocab_size
    noise = None
    if cfg.objective != "mlm":  # (gumbel: checked by `fuse_generator_head`)
        noise = torch.rand((B, N, V), generator=rng, device=mask.device)
    gen = model.generator
    h = gen.electra(masked.input_ids, mask, types_)
    h = gen.generator_predictions(h.gather(1, masked.positions[:, :, None].expand(-1, -1, h.shape[-1])))
    head = gen.generator_lm_head
    with torch.autocast(h.device.type, enabled=False):
        nll, predicted, sampled = FusedMLMHead.apply(
            h.float().reshape(B * N, -1),
            head.weight.float(),
            head.bias.float(),
            masked.targets.reshape(-1),
            None if noise is None else noise.view(B * N, V),
            masked.targets.reshape(-1) if cfg.disallow_correct else None,
            cfg.temperature,
            cfg.gen_label_smoothing,
            chunk_rows(V),
        )
    weight_sum = masked.weights.sum() if total is None else total
    loss = (nll * masked.weights.reshape(-1)).sum() / (weight_sum + 1e-6)  # `objective.generator_loss`
    return loss, predicted.view(B, N), None if noise is None else sampled.view(B, N)


def check_speed_variants(
    cfg: PretrainConfig, compile_mode: str | None, *, fused_generator_head: bool = False, gemm_epilogues: bool = False
) -> None:
    """Refuse, in one line, a variant this run cannot use (before anything of the run is written)."""
    if fused_generator_head and (cfg.uniform_generator or (cfg.objective != "mlm" and cfg.sampling != "gumbel")):
        raise ElectraError(
            "--fused-generator-head needs a generator that samples by gumbel (sampling gumbel, uniform_generator "
            f"false); this run has sampling {cfg.sampling}, uniform_generator {str(cfg.uniform_generator).lower()}"
        )
    if fused_generator_head and cfg.objective == "electric":
        raise ElectraError("--fused-generator-head is for a masked-LM generator; objective electric has a cloze model")
    if gemm_epilogues and compile_mode is None:
        raise ElectraError("--gemm-epilogues changes how --compile compiles: give --compile MODE as well")


def fuse_generator_head(model: ELECTRA) -> None:
    """Make `model.generate` (hence its forward) use the fused generator head (`fused_generate`) from now on."""
    check_speed_variants(model.cfg, None, fused_generator_head=True)
    model.generate = types.MethodType(fused_generate, model)  # (an instance attribute: parameters are unchanged)


# ---------------------------------------------------------------------------------------------- the update in a graph


class GraphUpdate:
    """What `train_step` does after the backward -- clip the joint gradient norm to `max_norm`, mark the step
    non-finite, skip or apply the official AdamW update (`electra.optim.AdamW`, its foreach formula), on the
    optimizer's own state, so checkpoints are unchanged -- as one function of tensors only: the learning rates and
    the step count are device tensors and the skip a `torch.where`, so nothing waits for the device and
    `torch.compile(mode=...)` captures it whole (`mode` None: run it eagerly). Call it with the step's loss and the
    run's `halted` flag (set in place); it returns (grad_norm, non_finite) and leaves the gradients set to None."""

    def __init__(self, optimizer: AdamW, max_norm: float, mode: str | None, backend: str = "inductor"):
        self.optimizer, self.max_norm = optimizer, max_norm
        device = optimizer.param_groups[0]["params"][0].device
        self.values = torch.zeros(2, len(optimizer.param_groups), dtype=torch.float64, device=device)
        torch._dynamo.mark_static_address(self.values)
        self.update: Callable[..., tuple[Tensor, Tensor]] = _update
        if mode is not None:
            self.update = torch.compile(_update, mode=mode, backend=backend, fullgraph=True)

    def __call__(self, loss: Tensor, halted: Tensor) -> tuple[Tensor, Tensor]:
        opt, groups, steps = self.optimizer, [], []
        for group in opt.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:  # the state as `AdamW.step` keeps it
                state = opt.state[p]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                for kept in (p, state["exp_avg"], state["exp_avg_sq"]):  # (a CUDA graph updates them in place)
                    torch._dynamo.mark_static_address(kept)
                state["step"] = int(state.get("step", 0)) + 1
            states = [opt.state[p] for p in params]
            hyper = (*group["betas"], group["eps"], group["weight_decay"], group["bias_correction"])
            moments = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
            groups.append((params, [p.grad for p in params], *moments, hyper))
            steps.append(states[0]["step"] if states else 0)
        for i, (group, step) in enumerate(zip(opt.param_groups, steps, strict=True)):
            self.values[0, i].fill_(group["lr"])  # (a fill from a number: no copy from host memory to wait for)
            self.values[1, i].fill_(step)
        torch._dynamo.mark_static_address(halted)
        with torch.no_grad():
            out = self.update(groups, self.values, loss, halted, self.max_norm)
        opt.zero_grad(set_to_none=True)
        return out


def _update(
    groups: list[
        tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], tuple[float, float, float, float, bool]]
    ],
    values: Tensor,
    loss: Tensor,
    halted: Tensor,
    max_norm: float,
) -> tuple[Tensor, Tensor]:
    """`GraphUpdate`'s computation; `values`: (2, groups) float64, each group's learning rate and step count."""
    grads = [g for group in groups for g in group[1]]
    # torch.nn.utils.clip_grad_norm_'s foreach computation (into new tensors: the gradients are cleared next)
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    clipped = torch._foreach_mul(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    non_finite = ~torch.isfinite(loss) | ~torch.isfinite(total)
    halted |= non_finite
    start = 0
    for i, (params, _, m, v, (beta1, beta2, eps, decay, bias_correction)) in enumerate(groups):
        g, start = clipped[start : start + len(params)], start + len(params)
        m_new = torch._foreach_lerp(m, g, 1 - beta1)
        v_new = torch._foreach_mul(v, beta2)
        torch._foreach_addcmul_(v_new, g, g, value=1 - beta2)
        denom = torch._foreach_sqrt(v_new)
        lr, step = values[0, i], values[1, i]
        if bias_correction:
            torch._foreach_div_(denom, (1 - beta2**step) ** 0.5)
            lr = lr / (1 - beta1**step)
        torch._foreach_add_(denom, eps)
        update = torch._foreach_div(m_new, denom)
        if decay:  # decoupled, scaled by the schedule's lr
            scale = torch.where(lr != 0, decay * values[0, i] / torch.where(lr != 0, lr, 1.0), 0.0)
            torch._foreach_add_(update, torch._foreach_mul(params, scale))
        p_new = torch._foreach_add(params, torch._foreach_mul(update, -lr))
        for old, new in ((params, p_new), (m, m_new), (v, v_new)):
            torch._foreach_copy_(old, [torch.where(halted, o, n) for o, n in zip(old, new, strict=True)])
    return total, non_finite


def compile_options(mode: str, gemm_epilogues: bool = False) -> dict[str, Any]:
    """`torch.compile`'s keywords for `mode`; with `gemm_epilogues` the same mode's inductor options plus
    `max_autotune_gemm` and `epilogue_fusion`: inductor times its own (Triton) GEMM kernels against the vendor
    library's for each product and keeps the faster, and into its own it fuses what follows the product -- the
    bias, the exact (erf) GELU of the feed-forward, dropout and the residual add -- so the feed-forward and the
    heads become fewer, larger kernels with the same math. (The vendor's fused GELU epilogue is the tanh
    approximation: a different function, so not used.)"""
    if not gemm_epilogues:
        return {"mode": mode}
    from torch._inductor import list_mode_options

    return {"options": {**list_mode_options(mode), "max_autotune_gemm": True, "epilogue_fusion": True}}


def apply_speed_variants(
    model: ELECTRA,
    optimizer: AdamW,
    *,
    fused_generator_head: bool = False,
    graph_optimizer: bool = False,
    compile_mode: str | None = None,
    gradient_scaler: bool = False,
    max_grad_norm: float = 1.0,
    gemm_epilogues: bool = False,
) -> GraphUpdate | None:
    """Switch the chosen variants on for `model` and `optimizer`; returns the `GraphUpdate` for `train_step` when
    `graph_optimizer` (compiled with the run's `compile_mode`, or "default" when the run is eager). `gemm_epilogues`
    is checked here and applied by compiling the model (`compile_options`)."""
    check_speed_variants(model.cfg, compile_mode, gemm_epilogues=gemm_epilogues)
    if fused_generator_head:
        fuse_generator_head(model)
    if not graph_optimizer:
        return None
    if gradient_scaler:
        raise ElectraError("--graph-optimizer does not take fp16's gradient scaler: use --precision bf16 or fp32")
    return GraphUpdate(optimizer, max_grad_norm, compile_mode or "default")
