"""One pretraining update and the held-out evaluation, with what they need: the batch plan (micro-batches and
processes), per-micro-batch seeds, precision, `torch.compile`, the optimizer and its learning rate.

`train_step` is the whole update: the loss of every micro-batch is normalised by the *global* batch's
denominators (masked slots, real tokens), so the accumulated gradient is exactly the gradient of the official
full-batch loss. All randomness of a micro-batch (masking, sampling, dropout) is seeded from (seed, step, global
micro-batch index): 2 processes x k micro-batches compute what 1 process x 2k does, and a resumed run repeats an
uninterrupted one exactly. `electra.train.pretrain` runs it in a loop; `electra.train.bench` times it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from electra import dist
from electra import objective as obj
from electra.config import COMPILE_MODES, COMPILE_SCOPES, MAX_MICRO_TOKENS, PretrainConfig
from electra.errors import ElectraError
from electra.fused import GraphUpdate, compile_options
from electra.model import ELECTRA
from electra.optim import AdamW, lr_factor, param_groups, set_group_lrs


@dataclass(frozen=True)
class BatchPlan:
    global_batch: int
    world_size: int
    micro: int  # sequences per forward, per process

    @property
    def per_rank(self) -> int:
        return self.global_batch // self.world_size

    @property
    def accum(self) -> int:
        return self.per_rank // self.micro


def plan_batches(global_batch: int, world_size: int, micro: int | None, max_length: int) -> BatchPlan:
    if global_batch % world_size:
        raise ElectraError(f"batch_size {global_batch} is not divisible by the number of processes {world_size}")
    per_rank = global_batch // world_size
    if micro is None:  # the largest divisor of the per-process batch within MAX_MICRO_TOKENS positions
        micro = max(
            d for d in range(1, per_rank + 1) if per_rank % d == 0 and (d * max_length <= MAX_MICRO_TOKENS or d == 1)
        )
    if micro < 1 or per_rank % micro:
        raise ElectraError(
            f"--micro-batch-size {micro} must divide the per-process batch {per_rank} "
            f"(batch_size {global_batch} / {world_size} processes)"
        )
    return BatchPlan(global_batch, world_size, micro)


def micro_seed(seed: int, step: int, index: int, stream: int) -> int:
    """A 63-bit seed for (seed, step, global micro-batch index, stream); stream 0 masking/sampling, 1 dropout."""
    words = np.random.SeedSequence([seed, step, index, stream]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | bf16 | fp16
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device_type) if self.name == "fp16" else None


def choose_precision(name: str, device: torch.device) -> Precision:
    """auto: bf16 on CUDA GPUs that support it, fp16 (+ gradient scaler) on older GPUs, fp32 elsewhere."""
    if name == "auto":
        name = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device.type == "cuda" else "fp32"
    if name not in ("fp32", "bf16", "fp16"):
        raise ElectraError(f"--precision must be auto, fp32, bf16 or fp16, got {name!r}")
    return Precision(name, device.type)


def set_learning_rate(optimizer: torch.optim.Optimizer, cfg: PretrainConfig, step: int) -> float:
    """lr_t for the update at (pre-increment) step t = step (docs/faithfulness.md §5.1); returns it."""
    lr = cfg.learning_rate * lr_factor(step, cfg.max_steps, cfg.warmup_steps, cfg.lr_decay_power, cfg.schedule)
    set_group_lrs(optimizer, lr)
    return lr


def build_optimizer(model: nn.Module, cfg: PretrainConfig) -> AdamW:
    """The official AdamW over `model`'s parameters (fused on a GPU: one kernel instead of a dozen per step)."""
    on_gpu = next(model.parameters()).device.type == "cuda"
    named = list(model.named_parameters())  # a shared parameter appears once, under the discriminator's name
    groups = param_groups(named, cfg.weight_decay)
    return AdamW(
        groups,
        lr=0.0,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_epsilon,
        bias_correction=cfg.adam_bias_correction,
        fused=on_gpu,
    )


CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def compile_model(model: ELECTRA, mode: str, scope: str = "model", gemm_epilogues: bool = False) -> bool:
    """`torch.compile` the model in place (parameter names, hence checkpoints, stay the same). scope "model":
    ELECTRA's whole forward -- generator, losses, sampling, discriminator -- as one graph; the draws from explicit
    `torch.Generator`s (the masking, and the sampling noise, drawn first) stay eager. "parts": the generator and
    the discriminator only, the losses and sampling eager.

    "reduce-overhead" also replays each compiled forward and backward as a CUDA graph, which is what a small model
    needs on a fast GPU, where launching kernels one by one takes longer than running them. Returns whether the
    mode uses CUDA graphs (then each micro-batch must be marked as a new step, see `train_step`). `gemm_epilogues`:
    inductor's own GEMM kernels with the pointwise work fused in (`electra.fused.compile_options`)."""
    if mode not in COMPILE_MODES:
        raise ElectraError(f"--compile: unknown mode {mode!r}; expected one of {', '.join(COMPILE_MODES)}")
    if scope not in COMPILE_SCOPES:
        raise ElectraError(f"unknown compile scope {scope!r}; expected one of {', '.join(COMPILE_SCOPES)}")
    how = compile_options(mode, gemm_epilogues)
    parts = [model] if scope == "model" else [model.generator]
    if scope != "model" and model.cfg.objective in obj.RTD:
        parts.append(model.discriminator)
    elif scope != "model" and model.cfg.objective in obj.SAMPLE_MLM:  # (its heads, and the copy head, stay eager)
        parts.append(model.masked_lm.electra)
    for part in parts:
        part.compile(**how)
    return mode in CUDA_GRAPH_MODES


def check_compile_plan(mode: str | None, plan: BatchPlan) -> None:
    """CUDA-graph modes need one micro-batch per step: with gradient accumulation the first micro-batch's
    gradients would live in graph memory that the next micro-batch's replay overwrites."""
    if mode in CUDA_GRAPH_MODES and plan.accum > 1:
        raise ElectraError(
            f"--compile {mode} (CUDA graphs) needs one micro-batch per step, but this run accumulates "
            f"{plan.accum} micro-batches of {plan.micro}: pass --micro-batch-size {plan.per_rank} "
            "if that fits in memory, or use --compile default"
        )


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Copy a batch to the device without waiting for it: from pinned memory when the device is a GPU (a copy from
    pageable memory would first wait for everything queued on the GPU)."""
    if device.type == "cuda":
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.to(device) for k, v in batch.items()}


STEP_FIELDS = tuple(
    "loss gen_loss disc_loss gen_accuracy disc_accuracy replaced_fraction tokens grad_norm non_finite".split()
)


@dataclass
class StepResult:
    """What one update logs, still on the device: reading it waits for the GPU to finish the step, so the loop
    reads the results of several steps at once (`read_steps`)."""

    values: Tensor  # float64, one entry per STEP_FIELDS name

    def read(self) -> dict[str, float]:
        return dict(zip(STEP_FIELDS, self.values.tolist(), strict=True))


def train_step(
    model: ELECTRA,
    wrapped: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    batch: dict[str, Tensor],
    *,
    step: int,
    cfg: PretrainConfig,
    plan: BatchPlan,
    info: dist.DistInfo,
    precision: Precision,
    cudagraphs: bool = False,
    halted: Tensor | None = None,
    update: GraphUpdate | None = None,
) -> StepResult:
    """One optimizer update on this process's slice of the global batch: masks -> global loss denominators ->
    forward/backward per micro-batch (gradient sync on the last only) -> clip -> step.

    `model` is the bare ELECTRA, `wrapped` the module to call (DDP or the same model). `cudagraphs`: the model
    was compiled with a CUDA-graph mode; each micro-batch then starts a new graph step, so that its forward may
    reuse the previous one's output memory. `halted`: a 0-d bool tensor on the device, set (in place) when the
    loss or the gradient norm is not finite; from then on no update is applied. Nothing here waits for the GPU:
    the caller reads the results later and stops the run at the first non-finite step (`read_steps`). `update`:
    clipping and the optimizer step as one (compiled) function (`electra.fused.GraphUpdate`, `--graph-optimizer`)."""
    device = info.device
    micro = [{k: v[j * plan.micro : (j + 1) * plan.micro] for k, v in batch.items()} for j in range(plan.accum)]
    rngs = [
        torch.Generator(device).manual_seed(micro_seed(cfg.seed, step, info.rank * plan.accum + j, 0))
        for j in range(plan.accum)
    ]
    masks = [model.mask(m["input_ids"], m["attention_mask"], g) for m, g in zip(micro, rngs, strict=True)]
    parts = [
        obj.loss_totals(cfg.objective, mk, m["attention_mask"], m["input_ids"], model.special)
        for m, mk in zip(micro, masks, strict=True)
    ]
    real = sum(m["attention_mask"].sum() for m in micro).float()
    totals = dist.all_reduce_sum(torch.stack([sum(p.gen for p in parts), sum(p.disc for p in parts), real]), info)
    totals, real = obj.LossTotals(*totals[:2]), totals[2]  # denominators of the global batch, its real tokens
    stats = torch.zeros(6, device=device, dtype=torch.float64)
    for j, (m, g, mk) in enumerate(zip(micro, rngs, masks, strict=True)):
        torch.manual_seed(micro_seed(cfg.seed, step, info.rank * plan.accum + j, 1))  # dropout
        sync = j == plan.accum - 1 or not info.distributed
        if cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        with contextlib.nullcontext() if sync else wrapped.no_sync():
            with precision.autocast():
                out = wrapped(m["input_ids"], m["attention_mask"], m["token_type_ids"], g, mk, totals)
            # DDP averages gradients over processes; the losses are already fractions of the global total
            loss = out.loss * info.world_size
            (scaler.scale(loss) if scaler else loss).backward()
        stats += torch.stack(
            [
                out.loss.detach(),
                out.gen_loss,
                out.disc_loss,
                out.gen_accuracy / plan.accum,
                out.disc_accuracy / plan.accum,
                out.replaced_fraction / plan.accum,
            ]
        ).double()
    stats = dist.all_reduce_sum(stats, info)  # the same on every process, so every process skips alike
    if halted is None:
        halted = torch.zeros((), dtype=torch.bool, device=device)
    if update is not None:
        grad_norm, non_finite = update(stats[0], halted)
    else:
        grad_norm, non_finite = optimizer_step(optimizer, scaler, stats[0], halted, cfg.max_grad_norm)
    W = info.world_size
    tail = [real.double(), grad_norm.detach().double(), non_finite.double()]
    return StepResult(torch.cat([stats[:3], stats[3:6] / W, *(x.view(1) for x in tail)]))


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    loss: Tensor,
    halted: Tensor,
    max_grad_norm: float,
) -> tuple[Tensor, Tensor]:
    """Clip, mark a non-finite step in `halted`, apply (or skip) the update and clear the gradients; returns the
    gradient norm and whether this step was non-finite."""
    if scaler:
        scaler.unscale_(optimizer)
    # the joint norm over generator and discriminator: every parameter the optimizer holds, each shared one once
    # (listing the optimizer's groups is cheaper than walking the module tree every step)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    non_finite = ~torch.isfinite(loss)
    if not scaler:  # (with fp16 an infinite gradient is routine: the scaler skips that step and lowers its scale)
        non_finite |= ~torch.isfinite(grad_norm)
    halted |= non_finite
    if scaler:
        scaler.step(optimizer, found_inf=halted)
        scaler.update()
    else:
        optimizer.step(found_inf=halted)
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, non_finite


class NonFiniteLoss(ElectraError):
    def __init__(self, step: int, what: str, value: float):
        self.step = step
        super().__init__(f"{what} is {value} at step {step}; no update from that step on was applied")


def read_steps(results: list[tuple[int, StepResult]]) -> list[tuple[int, dict[str, float]]]:
    """Read several steps' results in one transfer (one wait for the GPU) and empty the list; raises NonFiniteLoss
    for the first step whose loss or gradient norm was not finite."""
    if not results:
        return []
    rows = torch.stack([r.values for _, r in results]).tolist()
    read = [(step, dict(zip(STEP_FIELDS, row, strict=True))) for (step, _), row in zip(results, rows, strict=True)]
    results.clear()
    for step, r in read:
        if r["non_finite"]:
            what = "loss" if not math.isfinite(r["loss"]) else "the gradient norm"
            raise NonFiniteLoss(step, what, r["loss"] if what == "loss" else r["grad_norm"])
    return read


@torch.no_grad()
def evaluate(
    model: ELECTRA,
    batches: list[dict[str, Tensor]],
    cfg: PretrainConfig,
    precision: Precision,
    device: torch.device,
    cudagraphs: bool = False,
    rarity: Tensor | None = None,
) -> dict[str, float]:
    """Held-out metrics without dropout (docs/faithfulness.md §3.5): generator MLM accuracy and loss, sampled-token
    accuracy, discriminator loss, accuracy, AUC, precision and recall over real tokens (electra-15: over the masked-out
    ones, which its loss covers); for replace-mlm and all-tokens-mlm the full-size masked LM's `mlm_loss` and
    `mlm_accuracy` on the tokens it predicts (the masked slots; every real token) instead. Masks and samples are seeded
    the same way at every evaluation, so successive evaluations see the same corruptions up to the generator's
    samples. With `rarity` (-log p(token) of the training data's counts, `objective.unigram_log_probs`) also
    `disc_auc_unigram`: the AUC of scoring each token the discriminator reads by its rarity alone, on the same
    corruptions, which is what a discriminator gets from word frequency without any context (docs/pretraining.md);
    and `gen_loss_unigram`: the loss of predicting every masked word by its frequency alone, on the same masked
    positions, which is the generator's `gen_loss` without any context (label smoothing aside). For electric the
    disc_* metrics are its NCE classifier's (label: was sampled), `gen_loss` is over every maskable token, and
    `disc_auc_cloze` is the AUC of the NCE logit without the discriminator's score: the cloze model's own ranking,
    which the discriminator must improve on."""
    from sklearn.metrics import roc_auc_score

    was_training = model.training
    model.eval()
    w_sum = gw_sum = tok_sum = gen_loss = disc_loss = gen_correct = sampled_correct = unigram_loss = 0.0
    mlm_correct = replaced = real_sum = 0.0
    scores, truths, rare, prior = [], [], [], []
    for i, b in enumerate(batches):
        b = to_device(b, device)
        g = torch.Generator(device).manual_seed(micro_seed(cfg.seed, 2**31 - 1, i, 2))
        if cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        mk = model.mask(b["input_ids"], b["attention_mask"], g)
        with precision.autocast():
            out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"], g, mk)
        t = obj.loss_totals(cfg.objective, mk, b["attention_mask"], b["input_ids"], model.special)
        w, gw, n = float(mk.weights.sum()), float(t.gen), float(t.disc)  # (gw: electric's cloze loss's tokens)
        w_sum, gw_sum, tok_sum = w_sum + w, gw_sum + gw, tok_sum + n
        gen_loss += float(out.gen_loss) * gw
        gen_correct += float(out.gen_accuracy) * w
        sampled_correct += float(out.sampled_accuracy) * w
        if rarity is not None and cfg.objective == "electric":  # its cloze loss covers every maskable token
            unigram_loss += float(
                rarity[b["input_ids"].cpu()][
                    obj.maskable(b["input_ids"], b["attention_mask"], model.special).cpu()
                ].sum()
            )
        elif rarity is not None:
            unigram_loss += float((rarity[mk.targets.cpu()] * mk.weights.cpu().double()).sum())
        disc_loss += float(out.disc_loss) * n
        if cfg.objective in obj.SAMPLE_MLM:
            mlm_correct += float(out.disc_accuracy) * n
            real_sum += float(b["attention_mask"].sum())
            replaced += float(out.replaced_fraction) * float(b["attention_mask"].sum())
        if out.disc_logits is not None:
            real = out.disc_mask
            scores.append(out.disc_logits.float()[real].cpu())
            truths.append(out.disc_labels[real].cpu())
            if rarity is not None:
                rare.append(rarity[out.disc_input_ids[real].cpu()])
            if out.disc_prior is not None:
                prior.append(out.disc_prior.float()[real].cpu())
    model.train(was_training)
    metrics = {"gen_loss": gen_loss / max(gw_sum, 1), "gen_accuracy": gen_correct / max(w_sum, 1)}
    if rarity is not None:
        metrics["gen_loss_unigram"] = unigram_loss / max(gw_sum, 1)
    if cfg.objective in obj.SAMPLE_MLM:
        metrics.update(
            sampled_accuracy=sampled_correct / max(w_sum, 1),
            mlm_loss=disc_loss / max(tok_sum, 1),
            mlm_accuracy=mlm_correct / max(tok_sum, 1),
            replaced_fraction=replaced / max(real_sum, 1),
        )
    if scores:
        s, t = torch.cat(scores), torch.cat(truths)
        both = 0 < int(t.sum()) < len(t)  # an AUC needs both classes
        pred = s > 0
        tp = float((pred & t).sum())
        metrics.update(
            sampled_accuracy=sampled_correct / max(w_sum, 1),
            disc_loss=disc_loss / max(tok_sum, 1),
            disc_accuracy=float((pred == t).float().mean()),
            disc_auc=float(roc_auc_score(t.numpy(), s.numpy())) if both else float("nan"),
            disc_precision=tp / max(float(pred.sum()), 1.0),
            disc_recall=tp / max(float(t.sum()), 1.0),
            replaced_fraction=float(t.float().mean()),
        )
        for name, baseline in (("disc_auc_unigram", rare), ("disc_auc_cloze", prior)):
            if baseline:
                metrics[name] = float(roc_auc_score(t.numpy(), torch.cat(baseline).numpy())) if both else float("nan")
    return metrics
