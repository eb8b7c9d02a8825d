"""The finetuning recipe's fields (`electra.config.FinetuneConfig`) as typed keyword arguments of the finetuning
functions (`**recipe: Unpack[FinetuneFields]`); tests/test_config.py keeps them equal to the dataclass."""

from __future__ import annotations

from typing import Literal, TypedDict


class RecipeFields(TypedDict, total=False):
    """`FinetuneConfig`'s fields as keyword arguments, all but `head` and `max_train_examples` (`FinetuneFields`)."""

    learning_rate: float | None
    layerwise_lr_decay: float | None
    layer_decay_mode: Literal["official", "paper"]
    weight_decay: float
    warmup_proportion: float
    batch_size: int
    eval_batch_size: int
    group_by_length: bool
    epochs: int | None
    max_length: int
    loss_reduction: Literal["sum", "mean"]
    max_grad_norm: float
    head_dropout: float
    encoder_dropout: float | None
    double_unordered: bool
    adam_beta1: float
    adam_beta2: float
    adam_epsilon: float
    adam_bias_correction: bool
    schedule: Literal["official", "warmup_then_decay"]
    precision: Literal["fp32", "bf16"]


class FinetuneFields(RecipeFields, total=False):
    """Every `FinetuneConfig` field as a keyword argument: `finetune(..., epochs=3, max_length=64)`."""

    head: Literal["official", "transformers"]
    max_train_examples: int | None
