"""`electra pretrain`: train generator and discriminator jointly, as the paper did, on 1 CPU to many GPUs.

    electra pretrain --preset small --data DATA_DIR --out RUN_DIR
    torchrun --nproc-per-node 8 -m electra pretrain --preset base --data DATA_DIR --out RUN_DIR

Read `train` for the loop. One optimizer step ("step N" = N-th update) processes the preset's global batch,
whatever the number of processes: each process takes its contiguous slice of the batch and splits it into
micro-batches (gradient accumulation). The loss of every micro-batch is normalised by the *global* batch's
denominators (masked slots, real tokens), so the accumulated gradient is exactly the gradient of the official
full-batch loss (spec §3.2, §3.4). All randomness of a micro-batch (masking, sampling, dropout) is seeded from
(seed, step, global micro-batch index): 2 processes × k micro-batches compute what 1 process × 2k does, and a
resumed run repeats an uninterrupted one exactly. Optimizer and schedule: spec §5 (see `electra.optim`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from electra import checkpoint as ckpt
from electra import dist, io
from electra.config import PRESETS, PretrainConfig, add_config_arguments, from_dict, overrides_from_args, preset
from electra.errors import ElectraError
from electra.flops import format_flops, train_flops_per_sequence
from electra.model import ELECTRA, LossTotals
from electra.objective import SpecialIds
from electra.optim import AdamW, lr_factor, param_groups, peak_lr_factor
from electra.tokenizer import WordPiece, load_tokenizer

MAX_MICRO_TOKENS = 65536  # default micro-batch: at most this many positions (128 x 512) per process


@dataclass
class RunOptions:
    """Where and how a run happens; unlike `PretrainConfig`, none of this changes the trained weights."""

    out: str
    data: str | None = None
    corpus: list[str] | None = None
    vocab: str | None = None
    data_cache: str | None = None
    prepare_workers: int = 1
    init_from: list[str] | None = None
    resume: bool = False
    force: bool = False
    log_every: int = 10
    save_every: int = 1000
    eval_every: int = 1000
    eval_examples: int = 1000
    micro_batch_size: int | None = None
    precision: str = "auto"
    compile: str | None = None  # a torch.compile mode; None: eager
    device: str = "auto"
    progress: bool = True
    probe: str = "builtin"  # the linear-probe set logged at every evaluation ("none": no probe)
    glue_dir: str | None = None  # for a `glue:<task>` probe
    wandb: str | None = None


# ---------------------------------------------------------------------------------------------- pieces


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
        micro = max(d for d in range(1, per_rank + 1) if per_rank % d == 0 and (d * max_length <= MAX_MICRO_TOKENS
                                                                                 or d == 1))  # fmt: skip
    if micro < 1 or per_rank % micro:
        raise ElectraError(f"--micro-batch-size {micro} must divide the per-process batch {per_rank} "
                           f"(batch_size {global_batch} / {world_size} processes)")  # fmt: skip
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

    def autocast(self):
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
    """lr_t for the update at (pre-increment) step t = step (spec §5.1); returns it."""
    lr = cfg.learning_rate * lr_factor(step, cfg.max_steps, cfg.warmup_steps, cfg.lr_decay_power, cfg.schedule)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr


def build_optimizer(model: nn.Module, cfg: PretrainConfig) -> AdamW:
    """The spec's AdamW over `model`'s parameters (fused on a GPU: one kernel instead of a dozen per step)."""
    on_gpu = next(model.parameters()).device.type == "cuda"
    return AdamW(param_groups(model.named_parameters(), cfg.weight_decay), lr=0.0,
                 betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon,
                 bias_correction=cfg.adam_bias_correction, fused=on_gpu)  # fmt: skip


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
COMPILE_SCOPES = ("model", "parts")


def compile_model(model: ELECTRA, mode: str, scope: str = "model") -> bool:
    """`torch.compile` the model in place (parameter names, hence checkpoints, stay the same). scope "model":
    ELECTRA's whole forward -- generator, losses, sampling, discriminator -- as one graph; the draws from explicit
    `torch.Generator`s (the masking, and the sampling noise, drawn first) stay eager. "parts": the generator and
    the discriminator only, the losses and sampling eager.

    "reduce-overhead" also replays each compiled forward and backward as a CUDA graph, which is what a small model
    needs on a fast GPU, where launching kernels one by one takes longer than running them. Returns whether the
    mode uses CUDA graphs (then each micro-batch must be marked as a new step, see `train_step`)."""
    if mode not in COMPILE_MODES:
        raise ElectraError(f"--compile: unknown mode {mode!r}; expected one of {', '.join(COMPILE_MODES)}")
    if scope not in COMPILE_SCOPES:
        raise ElectraError(f"unknown compile scope {scope!r}; expected one of {', '.join(COMPILE_SCOPES)}")
    if scope == "model":
        model.compile(mode=mode)
    else:
        model.generator.compile(mode=mode)
        if model.cfg.objective == "electra":
            model.discriminator.compile(mode=mode)
    return mode in CUDA_GRAPH_MODES


def check_compile_plan(mode: str | None, plan: BatchPlan) -> None:
    """CUDA-graph modes need one micro-batch per step: with gradient accumulation the first micro-batch's
    gradients would live in graph memory that the next micro-batch's replay overwrites."""
    if mode in CUDA_GRAPH_MODES and plan.accum > 1:
        raise ElectraError(f"--compile {mode} (CUDA graphs) needs one micro-batch per step, but this run accumulates "
                           f"{plan.accum} micro-batches of {plan.micro}: pass --micro-batch-size {plan.per_rank} "
                           "if that fits in memory, or use --compile default")  # fmt: skip


def add_compile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compile", nargs="?", const="default", choices=COMPILE_MODES, metavar="MODE",
                        help="torch.compile the model's forward; MODE: default (when omitted), "
                             "reduce-overhead (CUDA graphs: fastest for small models on GPUs), max-autotune, "
                             "max-autotune-no-cudagraphs")  # fmt: skip


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Copy a batch to the device without waiting for it: from pinned memory when the device is a GPU (a copy from
    pageable memory would first wait for everything queued on the GPU)."""
    if device.type == "cuda":
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.to(device) for k, v in batch.items()}


STEP_FIELDS = ("loss", "gen_loss", "disc_loss", "gen_accuracy", "disc_accuracy", "replaced_fraction", "tokens",
               "grad_norm", "non_finite")  # fmt: skip


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
    step: int,
    cfg: PretrainConfig,
    plan: BatchPlan,
    info: dist.DistInfo,
    precision: Precision,
    cudagraphs: bool = False,
    halted: Tensor | None = None,
) -> StepResult:
    """One optimizer update on this process's slice of the global batch: masks -> global loss denominators ->
    forward/backward per micro-batch (gradient sync on the last only) -> clip -> step.

    `model` is the bare ELECTRA, `wrapped` the module to call (DDP or the same model). `cudagraphs`: the model
    was compiled with a CUDA-graph mode; each micro-batch then starts a new graph step, so that its forward may
    reuse the previous one's output memory. `halted`: a 0-d bool tensor on the device, set (in place) when the
    loss or the gradient norm is not finite; from then on no update is applied. Nothing here waits for the GPU:
    the caller reads the results later and stops the run at the first non-finite step (`read_steps`)."""
    device = info.device
    micro = [{k: v[j * plan.micro : (j + 1) * plan.micro] for k, v in batch.items()} for j in range(plan.accum)]
    rngs = [torch.Generator(device).manual_seed(micro_seed(cfg.seed, step, info.rank * plan.accum + j, 0))
            for j in range(plan.accum)]  # fmt: skip
    masks = [model.mask(m["input_ids"], m["attention_mask"], g) for m, g in zip(micro, rngs, strict=True)]
    totals = torch.stack([sum(mk.weights.sum() for mk in masks),
                          sum(m["attention_mask"].sum() for m in micro).float()])  # fmt: skip
    totals = LossTotals(*dist.all_reduce_sum(totals, info))  # denominators of the global batch
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
    if scaler:
        scaler.unscale_(optimizer)
    # the joint norm over generator and discriminator: every parameter the optimizer holds, each shared one once
    # (listing the optimizer's groups is cheaper than walking the module tree every step)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    non_finite = ~torch.isfinite(stats[0])
    if not scaler:  # (with fp16 an infinite gradient is routine: the scaler skips that step and lowers its scale)
        non_finite |= ~torch.isfinite(grad_norm)
    if halted is None:
        halted = torch.zeros((), dtype=torch.bool, device=device)
    halted |= non_finite
    if scaler:
        scaler.step(optimizer, found_inf=halted)
        scaler.update()
    else:
        optimizer.step(found_inf=halted)
    optimizer.zero_grad(set_to_none=True)
    W = info.world_size
    values = torch.cat([stats[:3], stats[3:6] / W, totals.disc.double().view(1), grad_norm.detach().double().view(1),
                        non_finite.double().view(1)])  # fmt: skip
    return StepResult(values)


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
def evaluate(model: ELECTRA, batches: list[dict[str, Tensor]], cfg: PretrainConfig, precision: Precision,
             device: torch.device, cudagraphs: bool = False) -> dict[str, float]:  # fmt: skip
    """Held-out metrics without dropout (spec §3.5): generator MLM accuracy and loss, sampled-token accuracy,
    discriminator loss, accuracy, AUC, precision and recall over real tokens. Masks and samples are seeded the same
    way at every evaluation, so successive evaluations see the same corruptions up to the generator's samples."""
    from sklearn.metrics import roc_auc_score

    was_training = model.training
    model.eval()
    w_sum = tok_sum = gen_loss = disc_loss = gen_correct = sampled_correct = 0.0
    scores, truths = [], []
    for i, b in enumerate(batches):
        b = to_device(b, device)
        g = torch.Generator(device).manual_seed(micro_seed(cfg.seed, 2**31 - 1, i, 2))
        if cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        mk = model.mask(b["input_ids"], b["attention_mask"], g)
        with precision.autocast():
            out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"], g, mk)
        w, n = float(mk.weights.sum()), float(b["attention_mask"].sum())
        w_sum, tok_sum = w_sum + w, tok_sum + n
        gen_loss += float(out.gen_loss) * w
        gen_correct += float(out.gen_accuracy) * w
        sampled_correct += float(out.sampled_accuracy) * w
        disc_loss += float(out.disc_loss) * n
        if out.disc_logits is not None:
            real = b["attention_mask"].bool()
            scores.append(out.disc_logits.float()[real].cpu())
            truths.append(out.disc_labels[real].cpu())
    model.train(was_training)
    metrics = {"gen_loss": gen_loss / max(w_sum, 1), "gen_accuracy": gen_correct / max(w_sum, 1)}
    if scores:
        s, t = torch.cat(scores), torch.cat(truths)
        pred = s > 0
        tp = float((pred & t).sum())
        metrics.update(
            sampled_accuracy=sampled_correct / max(w_sum, 1),
            disc_loss=disc_loss / max(tok_sum, 1),
            disc_accuracy=float((pred == t).float().mean()),
            disc_auc=float(roc_auc_score(t.numpy(), s.numpy())) if 0 < int(t.sum()) < len(t) else float("nan"),
            disc_precision=tp / max(float(pred.sum()), 1.0),
            disc_recall=tp / max(float(t.sum()), 1.0),
            replaced_fraction=float(t.float().mean()),
        )
    return metrics


class LiveProbe:
    """The linear probe of `electra.probe` on the encoder being trained, with the same probe on the randomly
    initialised encoder of this shape (computed once) as the baseline it has to beat."""

    def __init__(self, probe_set, tokenizer, max_length: int, baseline: dict[str, float]):
        self.probe_set, self.tokenizer, self.max_length, self.baseline = probe_set, tokenizer, max_length, baseline

    @classmethod
    def start(cls, opts: RunOptions, cfg: PretrainConfig, tokenizer: WordPiece, device: torch.device
              ) -> LiveProbe | None:  # fmt: skip
        from electra.probe import load_probe_set, probe, random_encoder

        if opts.probe == "none":
            return None
        try:
            probe_set = load_probe_set(opts.probe, opts.glue_dir)
        except ElectraError as err:
            dist.print0(f"  (no probe: {err})", flush=True)
            return None
        encoder_cfg = cfg.model if cfg.objective == "electra" else cfg.generator_model
        rng_state = torch.get_rng_state()  # the baseline's initialisation must not move the run's random stream
        result = probe(random_encoder(encoder_cfg, cfg.seed).to(device), tokenizer, probe_set, cfg.max_length)
        torch.set_rng_state(rng_state)
        baseline = {"probe_random_cls": result["probe_cls"], "probe_random_mean": result["probe_mean"],
                    "probe_majority": probe_set.majority}  # fmt: skip
        dist.print0(f"  probe {probe_set.name} ({len(probe_set.train)} train / {len(probe_set.test)} test): random "
                    f"initialisation {result['probe_cls']:.3f} ([CLS]) {result['probe_mean']:.3f} (mean), majority "
                    f"class {probe_set.majority:.3f}", flush=True)  # fmt: skip
        return cls(probe_set, tokenizer, cfg.max_length, baseline)

    def __call__(self, model: ELECTRA) -> dict[str, float]:
        from electra.probe import probe

        encoder = model.discriminator.electra if model.cfg.objective == "electra" else model.generator.electra
        return {**probe(encoder, self.tokenizer, self.probe_set, self.max_length), **self.baseline}


# ---------------------------------------------------------------------------------------------- logging


class MetricsLog:
    """metrics.jsonl (+ TensorBoard, + optionally Weights & Biases), written by the main process only."""

    def __init__(self, run_dir: Path, start_step: int, wandb_project: str | None, config: dict[str, Any]):
        self.path = run_dir / "metrics.jsonl"
        _truncate_metrics(self.path, start_step)
        self.file = self.path.open("a")
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        self.wandb = None
        if wandb_project:
            try:
                import wandb
            except ImportError:
                raise ElectraError("--wandb needs the wandb package (pip install 'electra[wandb]')") from None
            self.wandb = wandb.init(project=wandb_project, name=run_dir.name, config=config, resume="allow")

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        split = record.get("split", "train")
        for key, value in record.items():
            if key not in ("step", "split") and isinstance(value, (int, float)):
                self.tb.add_scalar(f"{split}/{key}", value, record["step"])
        if self.wandb is not None:
            self.wandb.log({f"{split}/{k}": v for k, v in record.items() if k not in ("step", "split")},
                           step=record["step"])  # fmt: skip

    def close(self) -> None:
        self.file.close()
        self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _truncate_metrics(path: Path, start_step: int) -> None:
    """Keep only records of steps <= start_step (a killed run may have logged past its last checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if record.get("step", 0) <= start_step:
            kept.append(line)
    io.write_text(path, "".join(line + "\n" for line in kept))


# ---------------------------------------------------------------------------------------------- setup


@dataclass
class Setup:
    cfg: PretrainConfig
    opts: RunOptions
    run_dir: Path
    data_dir: Path
    tokenizer: WordPiece
    init_model: ELECTRA | None = None  # weights from --init-from
    resume_from: Path | None = None
    run_meta: dict[str, Any] = field(default_factory=dict)


def _config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key} ({vb!r} in the run, {va!r} now)")
    return out


def init_from_hf(cfg: PretrainConfig, sources: list[str]) -> tuple[PretrainConfig, ELECTRA, WordPiece]:
    """Continued pretraining: discriminator (and optionally generator) weights and shapes from HF-format models.

    The model shape comes from the discriminator; the generator's width and depth from the generator when one is
    given (e.g. 1.0 for the released ELECTRA-Small), else from the config. The shared embeddings are the
    discriminator's."""
    from electra.hf import copy_state, load_hf

    if not 1 <= len(sources) <= 2:
        raise ElectraError("--init-from takes a discriminator and optionally a generator")
    disc = load_hf(sources[0], "discriminator")
    gen = load_hf(sources[1], "generator") if len(sources) == 2 else None
    model_cfg = replace(disc.config, hidden_dropout_prob=cfg.model.hidden_dropout_prob,
                        attention_probs_dropout_prob=cfg.model.attention_probs_dropout_prob)  # fmt: skip
    updates: dict[str, Any] = {"model": model_cfg}
    if gen is not None:
        g = gen.config
        if g.vocab_size != model_cfg.vocab_size or g.embedding_size != model_cfg.embedding_size:
            raise ElectraError(f"generator {sources[1]} does not fit discriminator {sources[0]} "
                               "(vocabulary or embedding size differ)")  # fmt: skip
        updates["generator_size"] = g.hidden_size / model_cfg.hidden_size
        updates["generator_layers"] = g.num_hidden_layers / model_cfg.num_hidden_layers
    cfg = replace(cfg, **updates)
    if gen is not None and (cfg.generator_model.hidden_size, cfg.generator_model.num_hidden_layers) != (
        gen.config.hidden_size,
        gen.config.num_hidden_layers,
    ):
        raise ElectraError(f"generator {sources[1]} has a shape this toolkit cannot express")
    tokenizer = load_tokenizer(sources[0])
    torch.manual_seed(cfg.seed)  # for the generator, when none is given
    model = ELECTRA(cfg, SpecialIds.from_tokenizer(tokenizer))
    if gen is not None:  # first, so that the discriminator's copy of the shared embeddings wins
        copy_state(gen, model.generator, f"generator {sources[1]}")
    copy_state(disc, model.discriminator, f"discriminator {sources[0]}")
    return cfg, model, tokenizer


# run options that `--resume` takes from the run when they are not given again
RESUMED_OPTIONS = ("log_every", "save_every", "eval_every", "eval_examples", "micro_batch_size", "precision",
                   "prepare_workers", "vocab", "data_cache", "probe", "glue_dir")  # fmt: skip


def run_options(args: argparse.Namespace, saved: dict[str, Any] | None) -> RunOptions:
    """Options from the command line; on --resume, the run's own for those not given; else the defaults."""
    values = {k: getattr(args, k) for k in RunOptions.__dataclass_fields__ if hasattr(args, k)}
    defaults = RunOptions(out="")
    for key in RESUMED_OPTIONS:
        if values.get(key) is None:
            values[key] = (
                (saved or {}).get("run", {}).get(key, getattr(defaults, key)) if args.resume else getattr(defaults, key)
            )
    opts = RunOptions(**values)
    for name in ("log_every", "save_every", "eval_examples"):
        if getattr(opts, name) < 1:
            raise ElectraError(f"--{name.replace('_', '-')} must be at least 1")
    return opts


def resolve_setup(args: argparse.Namespace, info: dist.DistInfo) -> Setup:
    run_dir = Path(args.out)
    saved = ckpt.read_run_config(run_dir) if (run_dir / ckpt.CONFIG).is_file() else None
    opts = run_options(args, saved)
    overrides = overrides_from_args(args)
    has_checkpoint = (run_dir / ckpt.CHECKPOINTS).is_dir() and any(
        (p / ckpt.MODEL).is_file() for p in (run_dir / ckpt.CHECKPOINTS).iterdir() if not p.name.startswith(".")
    )
    resume_from = None
    foreign = [n for n in (ckpt.CHECKPOINTS, "tb", "metrics.jsonl") if (run_dir / n).exists()]
    if saved is None and foreign:  # our runs write config.json before any of these
        raise ElectraError(f"{run_dir} holds {', '.join(foreign)} but is not an electra pretraining run "
                           "(no config.json); choose another --out")  # fmt: skip
    if saved is not None and not opts.resume:
        finished = saved.get("finished", False)
        if not opts.force:
            what = "a finished run" if finished else "a run"
            raise ElectraError(f"{run_dir} already holds {what}; pass --resume to continue it or --force to "
                               "start over (its checkpoints and metrics are deleted)")  # fmt: skip
    if opts.resume and has_checkpoint:
        resume_from = ckpt.resolve_checkpoint(run_dir, ckpt.LATEST)
    init_model, tokenizer = None, None
    if opts.resume and saved is not None:
        saved_cfg = ckpt.pretrain_config(saved, str(run_dir / ckpt.CONFIG))
        if args.preset is not None or overrides:  # what the command line asks for must be what the run is
            wanted = preset(args.preset, **overrides) if args.preset else _apply(saved_cfg, overrides)
            if opts.init_from:  # the shapes came from the --init-from models
                wanted = replace(wanted, model=saved_cfg.model, generator_size=saved_cfg.generator_size,
                                 generator_layers=saved_cfg.generator_layers)  # fmt: skip
            diffs = _config_differences(wanted.to_dict(), saved_cfg.to_dict())
            if diffs:
                raise ElectraError(f"cannot resume {run_dir}: the config differs from the run's: {'; '.join(diffs)}")
        cfg = saved_cfg
        if not opts.data and not opts.corpus:
            opts.data = saved.get("data", {}).get("path")
        if (run_dir / ckpt.TOKENIZER).is_dir():
            tokenizer = load_tokenizer(run_dir / ckpt.TOKENIZER)
        if resume_from is not None:
            opts.init_from = None  # the checkpoint has the weights
    else:
        if args.preset is None:
            raise ElectraError("--preset is required (choose one of " + ", ".join(PRESETS) + ")")
        cfg = preset(args.preset, **overrides)
    if opts.init_from:
        cfg, init_model, tokenizer = init_from_hf(cfg, opts.init_from)
    data_dir = _prepare_data(opts, cfg, run_dir, tokenizer, info)
    if tokenizer is None:
        tokenizer = load_tokenizer(data_dir / "tokenizer")
    if saved is None or not opts.resume:
        cfg = _vocab_from_data(cfg, overrides, tokenizer, opts)
    return Setup(cfg, opts, run_dir, data_dir, tokenizer, init_model, resume_from, saved or {})


def _vocab_from_data(cfg: PretrainConfig, overrides: dict[str, Any], tokenizer: WordPiece,
                     opts: RunOptions) -> PretrainConfig:  # fmt: skip
    """A new run's vocabulary size is its tokenizer's, unless --vocab-size says otherwise (a conflict is then
    reported by the data check) or the weights come from --init-from."""
    if "vocab_size" in overrides or opts.init_from or tokenizer.vocab_size == cfg.model.vocab_size:
        return cfg
    return replace(cfg, model=replace(cfg.model, vocab_size=tokenizer.vocab_size))


def _apply(cfg: PretrainConfig, overrides: dict[str, Any]) -> PretrainConfig:
    values = cfg.to_dict()
    for key, value in overrides.items():
        (values["model"] if key in values["model"] else values)[key] = value
    return from_dict(PretrainConfig, values)


def _prepare_data(opts: RunOptions, cfg: PretrainConfig, run_dir: Path, tokenizer: WordPiece | None,
                  info: dist.DistInfo) -> Path:  # fmt: skip
    """--data DIR as given, or --corpus SRC... prepared (once, by the main process; reused when cached)."""
    if bool(opts.data) == bool(opts.corpus):
        raise ElectraError("give exactly one of --data DIR (from `electra prepare`) or --corpus SRC ...")
    if opts.data:
        return Path(opts.data)
    from electra.data import prepare_corpus

    if tokenizer is None:
        if not opts.vocab:
            raise ElectraError("--corpus needs --vocab FILE|DIR|HUB_ID (the tokenizer) unless --init-from gives one")
        tokenizer = load_tokenizer(opts.vocab)
    out = Path(opts.data_cache) if opts.data_cache else run_dir / "data"
    if info.is_main:
        prepare_corpus(list(opts.corpus), tokenizer, cfg.max_length, out, workers=opts.prepare_workers,
                       seed=cfg.seed)  # fmt: skip
    dist.barrier(info)
    return out


# ---------------------------------------------------------------------------------------------- the run


def train(setup: Setup, info: dist.DistInfo) -> dict[str, Any]:
    """Set up model, optimizer, data and logs, then run the loop; returns the last logged training record."""
    from electra.data import PretrainLoader

    cfg, opts, run_dir = setup.cfg, setup.opts, setup.run_dir
    loader = PretrainLoader(setup.data_dir, cfg.batch_size, seed=cfg.seed, rank=info.rank, world_size=info.world_size)
    _check_data(loader, setup)
    plan = plan_batches(cfg.batch_size, info.world_size, opts.micro_batch_size, cfg.max_length)
    check_compile_plan(opts.compile, plan)
    precision = choose_precision(opts.precision, info.device)
    if precision.name == "bf16" and info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    torch.manual_seed(cfg.seed)  # the initial weights (identical on every process)
    model = setup.init_model or ELECTRA(cfg, SpecialIds.from_tokenizer(setup.tokenizer))
    if cfg.output_bias_init == "prior" and setup.init_model is None and setup.resume_from is None:
        model.init_output_biases(torch.from_numpy(loader.token_counts(cfg.model.vocab_size)))
    model.to(info.device)
    optimizer = build_optimizer(model, cfg)
    scaler = precision.scaler()
    step = 0
    if setup.resume_from is not None:
        state = ckpt.load_checkpoint(setup.resume_from, model, optimizer, scaler, restore_rng=True)
        loader.load_state_dict(state["loader"])
        step = int(state["step"])
    run_config = ckpt.run_config(cfg, asdict(opts), _data_info(loader, setup))
    if info.is_main:
        _start_run_dir(setup, run_config, fresh=setup.resume_from is None)
    dist.barrier(info)
    cudagraphs = compile_model(model, opts.compile) if opts.compile else False
    wrapped: nn.Module = model
    if info.distributed:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=cfg.uniform_generator,
        )  # fmt: skip
    eval_batches = list(loader.holdout(plan.micro))[: max(0, -(-opts.eval_examples // plan.micro))]
    flops_per_seq = train_flops_per_sequence(cfg)
    keep = ckpt.fraction_steps(cfg.max_steps)
    log = MetricsLog(run_dir, step, opts.wandb, run_config) if info.is_main else None
    bar = _progress_bar(cfg.max_steps, step, opts.progress and info.is_main)
    _print_header(cfg, plan, precision, info, model, flops_per_seq, step, setup)
    live_probe = LiveProbe.start(opts, cfg, setup.tokenizer, info.device) if info.is_main and eval_batches else None
    last: dict[str, Any] = {}
    last_saved = setup.resume_from
    interval_time, interval_steps, interval_tokens = 0.0, 0, 0
    halted = torch.zeros((), dtype=torch.bool, device=info.device)  # set by the first non-finite step
    unread: list[tuple[int, StepResult]] = []  # read at the next step that logs, evaluates or saves
    try:
        model.train()
        while step < cfg.max_steps:
            t0 = time.perf_counter()
            batch = to_device(next(loader), info.device)
            lr = set_learning_rate(optimizer, cfg, step)
            r = train_step(model, wrapped, optimizer, scaler, batch, step, cfg, plan, info, precision, cudagraphs,
                           halted)  # fmt: skip
            step += 1
            unread.append((step, r))
            logging_step = step % opts.log_every == 0 or step == cfg.max_steps
            eval_step = bool(eval_batches) and opts.eval_every and (step % opts.eval_every == 0
                                                                    or step == cfg.max_steps)  # fmt: skip
            save_step = step in keep or step % opts.save_every == 0 or step == cfg.max_steps
            if logging_step or eval_step or save_step:
                try:
                    rows = read_steps(unread)  # waits for the GPU; nothing is logged or saved past a bad step
                except NonFiniteLoss as err:
                    kept = f"the last good checkpoint is {last_saved}" if last_saved else "no checkpoint was written"
                    raise ElectraError(f"{err}; {kept}") from None
                interval_tokens += sum(int(row["tokens"]) for _, row in rows)
            interval_time += time.perf_counter() - t0
            interval_steps += 1
            if logging_step:
                v = rows[-1][1]
                seqs = interval_steps * cfg.batch_size / interval_time
                last = {"split": "train", "step": step, "loss": v["loss"], "gen_loss": v["gen_loss"],
                        "disc_loss": v["disc_loss"], "lr": lr, "grad_norm": v["grad_norm"],
                        "gen_accuracy": v["gen_accuracy"], "disc_accuracy": v["disc_accuracy"],
                        "replaced_fraction": v["replaced_fraction"], "seqs_per_s": seqs,
                        "tokens_per_s": seqs * cfg.max_length, "real_tokens_per_s": interval_tokens / interval_time,
                        "flops_per_s": seqs * flops_per_seq}  # fmt: skip
                interval_time, interval_steps, interval_tokens = 0.0, 0, 0
                if log:
                    log.write(last)
                _report(bar, last, step, cfg.max_steps)
            if eval_step:
                if info.is_main:
                    record = {"split": "eval", "step": step, **evaluate(model, eval_batches, cfg, precision,
                                                                        info.device, cudagraphs)}  # fmt: skip
                    if live_probe is not None:
                        record.update(live_probe(model))
                    log.write(record)
                    _say(bar, "eval  " + "  ".join(f"{k} {v:.4f}" for k, v in record.items()
                                                   if k not in ("split", "step")) + f"  (step {step})")  # fmt: skip
                dist.barrier(info)
            if save_step:
                last_saved = _save(setup, model, optimizer, scaler, loader, step, run_config, keep, info)
        if bar is not None:
            bar.close()
    finally:
        if log:
            log.close()
    return last


def _check_data(loader, setup: Setup) -> None:
    cfg, tok = setup.cfg, loader.tokenizer
    if loader.max_length != cfg.max_length:
        raise ElectraError(
            f"{setup.data_dir} was prepared with max length {loader.max_length}, but the config has "
            f"max_length {cfg.max_length}; prepare it again or pass --max-length {loader.max_length}"
        )
    if tok.vocab_size != cfg.model.vocab_size:
        raise ElectraError(f"{setup.data_dir} uses a vocabulary of {tok.vocab_size} tokens, but --vocab-size is "
                           f"{cfg.model.vocab_size}; leave --vocab-size out to use the data's")  # fmt: skip
    if tok.fingerprint() != setup.tokenizer.fingerprint():
        raise ElectraError(f"{setup.data_dir} was prepared with another tokenizer than the model's "
                           f"({setup.tokenizer.source}); prepare the corpus with that tokenizer")  # fmt: skip
    saved = setup.run_meta.get("data")
    if setup.resume_from is not None and saved and saved.get("key") != loader.meta.get("key"):
        raise ElectraError(
            f"cannot resume {setup.run_dir}: it was trained on other data ({saved.get('path')}, "
            f"key {saved.get('key')}) than {setup.data_dir} (key {loader.meta.get('key')})"
        )


def _data_info(loader, setup: Setup) -> dict[str, Any]:
    return {
        "path": str(Path(setup.data_dir).resolve()),
        "key": loader.meta.get("key"),
        "num_examples": loader.num_examples,
        "tokenizer_fingerprint": loader.tokenizer.fingerprint(),
    }


def _start_run_dir(setup: Setup, run_config: dict[str, Any], fresh: bool) -> None:
    run_dir = setup.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    if fresh:  # --force over an old run, or a new directory: start from a clean slate
        for name in (ckpt.CHECKPOINTS, "tb", "metrics.jsonl"):
            p = run_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    io.write_json(run_dir / ckpt.CONFIG, run_config)
    _install_tokenizer(setup.tokenizer, run_dir / ckpt.TOKENIZER)


def _install_tokenizer(tokenizer: WordPiece, path: Path) -> None:
    """The run's copy of its tokenizer: left alone when it is already this one (a resume never rewrites it),
    else written next to it and renamed into place, so that a kill never leaves a truncated tokenizer.json."""

    if path.is_dir():
        try:
            if load_tokenizer(path).fingerprint() == tokenizer.fingerprint():
                return
        except ElectraError:
            pass  # unreadable: replaced below
    io.write_dir(path, tokenizer.save, force=True)


def _save(setup, model, optimizer, scaler, loader, step, run_config, keep, info) -> Path | None:
    """The rolling `latest` checkpoint, plus `step_N` at the kept fractions of training (main process)."""
    path = None
    if info.is_main:
        root = setup.run_dir / ckpt.CHECKPOINTS
        finished = step == setup.cfg.max_steps
        state = {"step": step, "max_steps": setup.cfg.max_steps, "finished": finished, "loader": loader.state_dict(),
                 "world_size": info.world_size, "time": time.time()}  # fmt: skip
        path = ckpt.save_checkpoint(root, ckpt.LATEST, model, optimizer, scaler, state, run_config, setup.tokenizer)
        if step in keep:
            name = f"step_{step}"
            ckpt.copy_checkpoint(root, ckpt.LATEST, name)
            ckpt.update_index(root, keep[step], name)
        if finished:
            io.write_json(setup.run_dir / ckpt.CONFIG, {**run_config, "finished": True})
    dist.barrier(info)
    return path


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr, disable=None
    )  # fmt: skip  (None: off when stderr is not a terminal)


def _say(bar, text: str) -> None:
    if bar is not None and not bar.disable:
        bar.write(text)
    else:
        dist.print0(text, flush=True)


def _report(bar, r: dict[str, Any], step: int, total: int) -> None:
    if bar is not None and not bar.disable:
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{r['loss']:.3f}", gen=f"{r['gen_accuracy']:.3f}", disc=f"{r['disc_accuracy']:.3f}",
                        seq_s=f"{r['seqs_per_s']:.1f}", refresh=False)  # fmt: skip
    else:
        dist.print0(f"step {step}/{total}  loss {r['loss']:.4f}  gen {r['gen_loss']:.3f}  disc {r['disc_loss']:.4f}"
                    f"  lr {r['lr']:.3g}  {r['seqs_per_s']:.1f} seq/s  {r['tokens_per_s']:.0f} tok/s  "
                    f"{format_flops(r['flops_per_s'])}FLOP/s", flush=True)  # fmt: skip


def _print_header(cfg, plan, precision, info, model, flops_per_seq, step, setup) -> None:
    from electra.model import count_parameters

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
        dist.print0("  (on a GPU, --compile reduce-overhead trains small models several times faster: "
                    "docs/pretraining.md, 'Throughput and FLOPs')", flush=True)  # fmt: skip


# ---------------------------------------------------------------------------------------------- CLI


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=list(PRESETS), help="model/recipe preset (spec §1); optional on --resume")
    parser.add_argument("--data", metavar="DIR", help="a dataset directory from `electra prepare`")
    parser.add_argument(
        "--corpus", nargs="+", metavar="SRC", help="prepare these sources on the fly instead (cached in --data-cache)"
    )
    parser.add_argument("--vocab", metavar="SRC", help="tokenizer for --corpus: vocab.txt, directory or hub id")
    parser.add_argument("--data-cache", metavar="DIR", help="where --corpus is prepared (default RUN_DIR/data)")
    parser.add_argument("--prepare-workers", type=int, metavar="N", help="processes for --corpus")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (checkpoints, metrics)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN_DIR exactly from its latest checkpoint (starts fresh if it has none); "
        "options not given again are the run's own",
    )
    parser.add_argument("--force", action="store_true", help="start over in a RUN_DIR that already holds a run")
    parser.add_argument(
        "--init-from",
        nargs="+",
        metavar=("DISC", "GEN"),
        help="continued pretraining from HF-format discriminator [and generator] directories or hub "
        "ids (weights only; the step count and schedule start at 0). To continue a released "
        "model the way the official README does (global step 4e6 + extra, lr rescaled), use "
        "--max-steps EXTRA --warmup-steps 0: the schedule is then identical",
    )
    parser.add_argument("--log-every", type=int, metavar="N", help="log every N steps (default 10)")
    parser.add_argument(
        "--save-every", type=int, metavar="N", help="rewrite checkpoints/latest every N steps (default 1000)"
    )
    parser.add_argument(
        "--eval-every", type=int, metavar="N", help="held-out evaluation every N steps (default 1000; 0: never)"
    )
    parser.add_argument(
        "--eval-examples", type=int, metavar="N", help="held-out examples per evaluation (default 1000)"
    )
    parser.add_argument(
        "--micro-batch-size",
        type=int,
        metavar="B",
        help="sequences per forward per process (gradient accumulation = batch / processes / B; "
        f"default: the whole per-process batch, or less to stay within {MAX_MICRO_TOKENS} "
        "positions)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="auto: bf16 on GPUs that support it, fp16 with a gradient scaler on older GPUs, fp32 on CPU",
    )
    add_compile_argument(parser)
    parser.add_argument("--device", default="auto", help="auto (this process's GPU, else CPU), cpu, cuda, cuda:N")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--wandb", metavar="PROJECT", help="also log to this Weights & Biases project")
    parser.add_argument(
        "--probe",
        metavar="SET",
        help="linear probe on the frozen features at every evaluation, beside the same probe on "
        "random weights: builtin (default; no download), glue:<task> (with --glue-dir), a "
        "CSV/TSV/JSONL file with text and label columns, or none",
    )
    parser.add_argument("--glue-dir", metavar="DIR", help="GLUE data for a glue:<task> probe")
    add_config_arguments(parser, PretrainConfig, type(PretrainConfig().model))


def run_pretrain(args: argparse.Namespace) -> int:
    info = dist.init_from_env(args.device)
    try:
        setup = resolve_setup(args, info)
        if setup.resume_from is not None:
            state = json.loads((setup.resume_from / ckpt.TRAINER_STATE).read_text())
            if state.get("finished"):
                dist.print0(f"{setup.run_dir} is already finished ({state['step']} steps); nothing to do")
                return 0
        elif setup.opts.resume:
            dist.print0(f"{setup.run_dir} has no checkpoint yet: starting from scratch")
        last = train(setup, info)
        dist.print0(f"done: {setup.run_dir}  ({json.dumps({k: last[k] for k in ('step', 'loss') if k in last})})")
        return 0
    finally:
        dist.cleanup()
