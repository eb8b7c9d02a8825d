"""The finetuning recipe every task shares (GLUE, your own data, tagging, SQuAD): its options, the optimizer with
layer-wise learning-rate decay, and the training loop.

Recipe (paper Table 7, docs/faithfulness.md §6): Adam without bias correction (eps 1e-6), weight decay 0, warmup 10 %
of the steps with the official schedule shape (step 0 has lr 0), clip 1.0, batch 32, layer-wise LR decay 0.8 (0.9 for
24 layers), lr 3e-4 / 1e-4 / 5e-5 by size, batch loss = sum over examples; epochs by task (GLUE 3, 10 for RTE and
STS-B; tagging 3; SQuAD 2).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from electra.config import ModelConfig, check_fields, check_range
from electra.errors import ConfigError
from electra.glue.layer_decay import layer_lr_multipliers
from electra.optim import AdamW, lr_factor, param_groups, set_group_lrs

if TYPE_CHECKING:
    from tqdm import tqdm

    from electra.glue.tasks import Task


@dataclass
class FinetuneConfig:
    """The finetuning recipe; None means "by model size / by task" as resolved in `resolve`."""

    learning_rate: float | None = None  # 3e-4 Small (H <= 256), 1e-4 Base (H <= 768), 5e-5 Large
    layerwise_lr_decay: float | None = None  # 0.8 Small/Base, 0.9 Large (24 layers); 1.0 switches it off
    layer_decay_mode: Literal["official", "paper"] = "official"  # official keeps the off-by-one (faithfulness §5.3)
    weight_decay: float = 0.0  # paper Table 7 (the official code's default is 0.01)
    warmup_proportion: float = 0.1
    batch_size: int = 32
    eval_batch_size: int = 64
    epochs: int | None = None  # 3; 10 for RTE and STS-B
    max_length: int = 128  # 512 for the "++" checkpoints as in richarddwang/electra_pytorch
    loss_reduction: Literal["sum", "mean"] = "sum"  # sum: official; mean: richarddwang/electra_pytorch
    max_grad_norm: float = 1.0  # 0: no clipping
    head_dropout: float = 0.1
    encoder_dropout: float | None = None  # the encoder's hidden and attention dropout; None: the model's own (0.1)
    head: Literal["official", "transformers"] = "official"  # transformers: exports as ElectraForSequenceClassification
    double_unordered: bool = True  # MRPC and STS-B train only
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    adam_bias_correction: bool = False
    schedule: Literal["official", "warmup_then_decay"] = "official"
    max_train_examples: int | None = None  # subsample train (fixed subset, the same for every seed)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast on CUDA

    def __post_init__(self):
        check_fields(self)
        for name in ("batch_size", "eval_batch_size"):
            check_range(self, name, 1, None)
        check_range(self, "warmup_proportion", 0, 1)
        if self.max_train_examples is not None:
            check_range(self, "max_train_examples", 1, None)
        if self.encoder_dropout is not None and not 0 <= self.encoder_dropout < 1:
            raise ConfigError(f"encoder_dropout must be in [0, 1) or none, got {self.encoder_dropout}")
        if self.learning_rate is not None:
            check_range(self, "learning_rate", 0, None, lo_open=True)
        if self.layerwise_lr_decay is not None:
            check_range(self, "layerwise_lr_decay", 0, 1, lo_open=True)  # 1.0: no decay
        if self.epochs is not None:
            check_range(self, "epochs", 1, None)
        check_range(self, "max_length", 4, None)  # [CLS] a [SEP] b [SEP] with one piece each
        check_range(self, "max_grad_norm", 0, None)  # 0: no clipping (`fit`)
        check_range(self, "adam_epsilon", 0, None, lo_open=True)
        check_range(self, "weight_decay", 0, None)
        for name in ("head_dropout", "adam_beta1", "adam_beta2"):
            check_range(self, name, 0, 1, hi_open=True)

    def encoder_config(self, model: ModelConfig) -> ModelConfig:
        """The encoder's config while finetuning: the model's own, with both of its dropout probabilities (hidden
        states and attention weights) replaced by `encoder_dropout` when that is set."""
        if self.encoder_dropout is None:
            return model
        p = self.encoder_dropout
        return dataclasses.replace(model, hidden_dropout_prob=p, attention_probs_dropout_prob=p)

    def resolve(self, model: ModelConfig, task: Task) -> FinetuneConfig:
        """A copy with every size- and task-dependent default filled in."""
        return self.with_defaults(model, task.epochs)

    def with_defaults(self, model: ModelConfig, epochs: int) -> FinetuneConfig:
        """A copy with the size-dependent defaults filled in (paper Table 7: the learning rate by hidden size,
        layer-wise decay 0.9 for 24 layers, else 0.8) and `epochs` unless set: for GLUE the task's, for tagging and
        SQuAD theirs."""
        lr = self.learning_rate
        if lr is None:
            lr = 3e-4 if model.hidden_size <= 256 else 1e-4 if model.hidden_size <= 768 else 5e-5
        decay = self.layerwise_lr_decay
        if decay is None:
            decay = 0.9 if model.num_hidden_layers >= 24 else 0.8
        return dataclasses.replace(
            self,
            learning_rate=lr,
            layerwise_lr_decay=decay,
            epochs=self.epochs if self.epochs is not None else epochs,
        )


# ---------------------------------------------------------------------------------------------- training


def autocast(device: torch.device, precision: str) -> torch.autocast:
    enabled = precision == "bf16" and device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


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
    """The recipe's Adam (no bias correction by default) with layer-wise learning-rate decay: the encoder's
    parameters are named `electra.*`, the task head's start with one of `head_prefixes`. Set the learning rate of
    each step with `set_group_lrs(opt, cfg.learning_rate * lr_factor(...))` as `finetune_run` does."""
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
) -> list[float]:
    """The finetuning loop of every task: `cfg.epochs` passes over `n` training rows in a new seeded order each
    epoch, batches of `cfg.batch_size` (the last one short: as the official padding rows with zero loss), the
    recipe's warm-up and decay, clipping, one optimizer step per batch. `step_losses(rows)` returns the loss to
    minimise, its summed per-row value and the number of rows (or words) it covers; returns each epoch's mean."""
    total = train_steps(n, cfg)
    warmup = cfg.warmup_proportion * total
    shuffle = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    step = 0
    epoch_losses = []
    model.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=shuffle).tolist()  # a new order every epoch
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
