"""`electra.api.pretrain`'s keyword arguments, typed: the `RunOptions` (less `out`) and every config field, kept
equal to the dataclasses by tests/test_config.py."""

from __future__ import annotations

import os
from typing import Literal, TypedDict


class RunSettings(TypedDict, total=False):
    """Where and how the run happens (`RunOptions`)."""

    data: str | os.PathLike[str] | None
    corpus: list[str] | None
    vocab: str | os.PathLike[str] | None
    data_cache: str | os.PathLike[str] | None
    prepare_workers: int
    init_from: list[str] | None
    resume: bool
    force: bool
    log_every: int
    save_every: int
    eval_every: int
    eval_examples: int
    micro_batch_size: int | None
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    compile: str | None
    fused_generator_head: bool
    graph_optimizer: bool
    gemm_epilogues: bool
    device: str
    progress: bool
    probe: str
    glue_dir: str | os.PathLike[str] | None
    wandb: str | None


class PretrainSettings(RunSettings, total=False):
    """The run options and the config fields that override the preset's."""

    objective: Literal["electra", "mlm", "electra-15", "replace-mlm", "all-tokens-mlm", "electric"]
    generator_size: float
    generator_layers: float
    tie_all_weights: bool
    embedding_sharing: Literal["official", "gdes", "none"]
    output_bias_init: Literal["zero", "prior"]
    word_init: Literal["random", "ppmi"]
    freeze_word_embeddings: bool
    max_length: int
    mask_prob: float
    masking: Literal["official", "bernoulli"]
    mask_token_prob: float
    random_token_prob: float
    sampling: Literal["gumbel", "multinomial"]
    temperature: float
    disallow_correct: bool
    uniform_generator: bool
    remove_top_word_direction: bool
    gen_weight: float
    disc_weight: float
    gen_label_smoothing: float
    disc_label_smoothing: float
    learning_rate: float
    batch_size: int
    max_steps: int
    warmup_steps: int
    lr_decay_power: float
    schedule: Literal["official", "warmup_then_decay"]
    weight_decay: float
    adam_beta1: float
    adam_beta2: float
    adam_epsilon: float
    adam_bias_correction: bool
    max_grad_norm: float
    seed: int
    vocab_size: int
    embedding_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    hidden_dropout_prob: float
    attention_probs_dropout_prob: float
    layer_norm_eps: float
    initializer_range: float
    pad_token_id: int
