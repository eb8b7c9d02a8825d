"""Typed configuration: the transformer shape, the pretraining recipe, and named presets.

Every preset is a plain dict of field values checked against the dataclasses below, so an unknown key fails
loudly (with the nearest valid names) instead of being silently ignored. Values and sources are in
docs/faithfulness.md §1 (sizes, generator shape, pretraining defaults) and §5 (optimizer).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from electra.errors import ConfigError
from electra.validate import (  # noqa: F401  (the config API: configs are built and checked through these)
    check_fields,
    check_range,
    conform,
    flat_fields,
    from_dict,
    unknown_key_message,
    without_retired,
)

# run options that are not part of a run's result (the command line checks them before any heavy import)
MAX_MICRO_TOKENS = 65536  # default micro-batch: at most this many positions (128 x 512) per process
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_SCOPES = ("model", "parts")


@dataclass
class ModelConfig:
    """Shape of one BERT-style encoder (the discriminator; the generator is derived from it)."""

    vocab_size: int = 30522
    embedding_size: int = 128
    hidden_size: int = 256
    num_hidden_layers: int = 12
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0

    def __post_init__(self):
        check_fields(self)
        sizes = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
        for name in (*sizes, "intermediate_size", "max_position_embeddings"):
            check_range(self, name, 1, None)
        check_range(self, "type_vocab_size", 1, None)
        check_range(self, "hidden_dropout_prob", 0, 1, hi_open=True)
        check_range(self, "attention_probs_dropout_prob", 0, 1, hi_open=True)
        check_range(self, "layer_norm_eps", 0, None, lo_open=True)
        check_range(self, "initializer_range", 0, None, lo_open=True)
        check_range(self, "pad_token_id", 0, self.vocab_size - 1)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}"
            )

    def generator(self, size: float, layers: float = 1.0) -> ModelConfig:
        """The generator's shape (faithfulness §1.3): width, FFN and heads scale by `size`, depth by `layers`."""
        hidden = int(round(self.hidden_size * size))
        return dataclasses.replace(
            self,
            hidden_size=hidden,
            num_hidden_layers=int(round(self.num_hidden_layers * layers)),
            num_attention_heads=max(1, hidden // 64),
            intermediate_size=4 * hidden,
        )


# electra-15, replace-mlm and all-tokens-mlm: the paper's efficiency ablations (§3.5, Table 5; faithfulness §3.5);
# electric: Electric's NCE objective with a two-tower cloze generator (electra.electric)
Objective = Literal["electra", "mlm", "electra-15", "replace-mlm", "all-tokens-mlm", "electric"]


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run's result (not where it runs or how often it logs)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    objective: Objective = "electra"  # "mlm": BERT-style masked LM only (same encoder), for same-compute baselines
    generator_size: float = 0.25  # generator hidden / discriminator hidden (docs/faithfulness.md §1.3)
    generator_layers: float = 1.0  # generator depth / discriminator depth
    # official untied_generator=False: the generator is the discriminator's own encoder, with its own MLM head (§3.2)
    tie_all_weights: bool = False
    # official: generator and discriminator share the embedding tables and their LayerNorm (paper §3.2);
    # gdes: the discriminator adds its own zero-initialised deltas to the generator's tables, through which its
    # gradient does not flow (DeBERTaV3's gradient-disentangled sharing); none: separate embeddings
    embedding_sharing: Literal["official", "gdes", "none"] = "official"
    # zero: output biases start at 0 (official); prior: the generator's at the log-frequency of each token in the
    # data and the discriminator's at the log-odds of a token being replaced, so that predicting the base rates
    # needs no change of the representations (docs/pretraining.md, "Why short runs finetune worse than random")
    output_bias_init: Literal["zero", "prior"] = "zero"
    # random: the word table starts at the initialiser's random draw (official); ppmi: at word vectors of the
    # training data's co-occurrence counts (electra.init; not in the paper), the same scale
    word_init: Literal["random", "ppmi"] = "random"
    # keep every word table where it started (no gradient, no update): with word_init="ppmi" the layers train on
    # top of the counted vectors instead of overwriting them (docs/pretraining.md; not in the paper)
    freeze_word_embeddings: bool = False
    # data and masking (docs/faithfulness.md §3.1)
    max_length: int = 128
    mask_prob: float = 0.15
    masking: Literal["official", "bernoulli"] = "official"  # official: k slots drawn with replacement
    mask_token_prob: float = 0.85  # selected slots that become [MASK]
    random_token_prob: float = 0.0  # selected slots that become a random token (BERT: 0.1)
    # generator sampling (docs/faithfulness.md §3.3)
    sampling: Literal["gumbel", "multinomial"] = "gumbel"
    temperature: float = 1.0
    disallow_correct: bool = False
    uniform_generator: bool = False
    # what the run delivers: the discriminator's word table with the top direction of what training moved undone
    # (from a random start: the table's own top direction), applied whenever the run's encoder is loaded for
    # finetuning, probing or export (electra.init.remove_top_word_direction; not in the paper)
    remove_top_word_direction: bool = False
    # losses (docs/faithfulness.md §3.2, §3.4)
    gen_weight: float = 1.0
    disc_weight: float = 50.0
    gen_label_smoothing: float = 0.0
    disc_label_smoothing: float = 0.0
    # optimisation (docs/faithfulness.md §5)
    learning_rate: float = 5e-4
    batch_size: int = 128
    max_steps: int = 1_000_000
    warmup_steps: int = 10_000
    lr_decay_power: float = 1.0
    schedule: Literal["official", "warmup_then_decay"] = "official"
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    adam_bias_correction: bool = False
    max_grad_norm: float = 1.0
    seed: int = 0

    def __post_init__(self):
        check_fields(self)  # (a `model` given as a dict becomes a ModelConfig)
        if self.max_length < 5:
            raise ConfigError(f"max_length must be at least 5, got {self.max_length}")
        if self.max_length > self.model.max_position_embeddings:
            raise ConfigError(
                f"max_length {self.max_length} exceeds max_position_embeddings {self.model.max_position_embeddings}"
            )
        if not 0 < self.mask_prob < 1:
            raise ConfigError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if self.mask_token_prob + self.random_token_prob > 1:
            raise ConfigError("mask_token_prob + random_token_prob must be at most 1")
        if self.objective == "mlm":  # BERT baseline: the "generator" is the full-size model being trained
            self.generator_size = 1.0
        tied = dict(objective=("electra", "electra-15"), generator_size=(1.0,), generator_layers=(1.0,))
        tied.update(embedding_sharing=("official",), uniform_generator=(False,))
        wrong = [f"{k}={getattr(self, k)!r}" for k, allowed in tied.items() if getattr(self, k) not in allowed]
        if self.tie_all_weights and wrong:
            raise ConfigError(
                "tie_all_weights makes the generator the discriminator's own full-size encoder (official "
                "untied_generator=False): it needs objective electra or electra-15, generator_size 1, generator_layers "
                f"1, embedding_sharing official and uniform_generator false; got {', '.join(wrong)}"
            )
        if self.objective == "electric" and self.uniform_generator:
            raise ConfigError("objective electric needs its cloze generator: uniform_generator must be false")
        for name in ("max_steps", "batch_size"):
            check_range(self, name, 1, None)
        check_range(self, "warmup_steps", 0, None)
        check_range(self.model, "type_vocab_size", 2, None)  # pretraining examples use segment ids 0 and 1
        check_range(self, "generator_size", 0, 1, lo_open=True)
        check_range(self, "generator_layers", 0, 1, lo_open=True)
        for name in ("mask_token_prob", "random_token_prob"):
            check_range(self, name, 0, 1)
        for name in ("gen_label_smoothing", "disc_label_smoothing", "adam_beta1", "adam_beta2"):
            check_range(self, name, 0, 1, hi_open=True)
        for name in ("temperature", "learning_rate", "lr_decay_power", "adam_epsilon", "max_grad_norm"):
            check_range(self, name, 0, None, lo_open=True)
        for name in ("gen_weight", "disc_weight", "weight_decay", "seed"):
            check_range(self, name, 0, None)
        if self.warmup_steps > self.max_steps:
            raise ConfigError(
                f"warmup_steps {self.warmup_steps} is longer than the run (max_steps {self.max_steps}): "
                "the learning rate would never reach its peak; choose at most max_steps"
            )

    @property
    def max_predictions(self) -> int:
        """N = int((mask_prob + 0.005) * max_length): masked slots per sequence (docs/faithfulness.md §1.1)."""
        return int((self.mask_prob + 0.005) * self.max_length)

    @property
    def generator_model(self) -> ModelConfig:
        return self.model.generator(self.generator_size, self.generator_layers)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    group_by_length: bool = False  # training batches of rows of similar length (faster; not the official order)
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
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast (GPU, or a CPU with bf16 instructions)

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

    def resolve(self, model: ModelConfig, task: Any) -> FinetuneConfig:  # noqa: ANN401  (a task: its `epochs`)
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


# ---------------------------------------------------------------------------------------------- presets

_SMALL = dict(embedding_size=128, hidden_size=256, num_hidden_layers=12, num_attention_heads=4, intermediate_size=1024)
_BASE = dict(embedding_size=768, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
_LARGE = dict(
    embedding_size=1024, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
)

PRESETS: dict[str, dict[str, Any]] = {
    # A CPU-minutes model for smoke runs, tests and the quick start; not from the paper. Its word table starts at the
    # training data's co-occurrence (PPMI) vectors and stays there, and the transformer layers train on top of them
    # under the official Adam epsilon at batch 64. Of the earlier CPU recipes, the official epsilon with a trained
    # table finetuned worse than random weights (the table's move to word frequency costs SST-2 a dozen points) and
    # epsilon 1e-2 left the layers untrained (docs/pretraining.md, "Why short runs finetune worse than random weights"
    # and "Counted words, trained layers").
    "tiny": dict(
        model=dict(
            embedding_size=64, hidden_size=128, num_hidden_layers=4, num_attention_heads=2, intermediate_size=512
        ),
        generator_size=0.25,
        learning_rate=5e-4,
        batch_size=64,
        max_steps=1250,
        warmup_steps=125,
        max_length=128,
        # word knowledge no CPU run learns, counted in seconds (electra.init) and kept: the layers learn to
        # read it (GLUE-5 +4 over random weights, STS-B +19; docs/pretraining.md, "Counted words, trained layers")
        word_init="ppmi",
        freeze_word_embeddings=True,
    ),
    # The paper's ELECTRA-Small = ELECTRA-Small-OWT = the official default config (docs/faithfulness.md §1.4, §1.5).
    "small": dict(
        model=_SMALL,
        generator_size=0.25,
        learning_rate=5e-4,
        batch_size=128,
        max_steps=1_000_000,
        warmup_steps=10_000,
        max_length=128,
    ),
    # The released ELECTRA-Small: full-size generator, length 512, ~4M steps (docs/faithfulness.md §1.5).
    "small++": dict(
        model=_SMALL,
        generator_size=1.0,
        learning_rate=5e-4,
        batch_size=128,
        max_steps=4_000_000,
        warmup_steps=10_000,
        max_length=512,
    ),
    "base": dict(
        model=_BASE,
        generator_size=1 / 3,
        learning_rate=2e-4,
        batch_size=256,
        max_steps=766_000,
        warmup_steps=10_000,
        max_length=512,
    ),
    # The released ELECTRA-Base (Base++): generator 1/3, batch 256, 4M steps (docs/faithfulness.md §1.5; paper Table 8).
    "base++": dict(
        model=_BASE,
        generator_size=1 / 3,
        learning_rate=2e-4,
        batch_size=256,
        max_steps=4_000_000,
        warmup_steps=10_000,
        max_length=512,
    ),
    "large": dict(
        model=_LARGE,
        generator_size=0.25,
        learning_rate=2e-4,
        batch_size=2048,
        max_steps=400_000,
        warmup_steps=10_000,
        max_length=512,
        mask_prob=0.25,
    ),
    # The released ELECTRA-Large = ELECTRA-1.75M (docs/faithfulness.md §1.5).
    "large++": dict(
        model=_LARGE,
        generator_size=0.25,
        learning_rate=2e-4,
        batch_size=2048,
        max_steps=1_750_000,
        warmup_steps=10_000,
        max_length=512,
        mask_prob=0.25,
    ),
}


def preset(name: str, **overrides: Any) -> PretrainConfig:
    """The named preset with `overrides` applied; model fields may be given flat (`hidden_size=64`)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = json.loads(json.dumps(PRESETS[name]))  # deep copy
    model = values.pop("model")
    model_keys = {f.name for f in fields(ModelConfig)}
    for key, value in overrides.items():
        if key in model_keys:
            model[key] = value
        else:
            values[key] = value
    steps, warmup = PRESETS[name]["max_steps"], PRESETS[name]["warmup_steps"]
    is_int = lambda v: conform(v, int)[0]  # (a value of another type is reported by the config's check)
    shortened = is_int(overrides.get("max_steps")) and overrides["max_steps"] < steps
    if shortened and "warmup_steps" not in overrides:
        # a shortened run keeps the preset's warm-up *fraction* (a 30-step tiny run with the preset's 200 warm-up
        # steps would peak at 3.5 % of the learning rate)
        values["warmup_steps"] = max(1 if warmup else 0, round(warmup * overrides["max_steps"] / steps))
    if "hidden_size" in overrides and "num_attention_heads" not in overrides and is_int(model["hidden_size"]):
        model["num_attention_heads"] = max(1, model["hidden_size"] // 64)
    if "hidden_size" in overrides and "intermediate_size" not in overrides and is_int(model["hidden_size"]):
        model["intermediate_size"] = 4 * model["hidden_size"]
    return from_dict(PretrainConfig, {**values, "model": model})
