"""Command-line options generated from the typed configs: one `--field-name VALUE` per field, in the groups `--help`
shows them in, with each field's default and the presets that differ."""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable
from dataclasses import fields
from typing import Any, Literal

from electra.config import PRESETS, ModelConfig, PretrainConfig, flat_fields, preset


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


# The pretraining config's fields in the groups `--help` shows them in, the ones a user needs first first.
PRETRAIN_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "recipe": (
        "the optimisation and data of the preset (paper Table 6, docs/faithfulness.md §5)",
        ("learning_rate", "batch_size", "max_steps", "warmup_steps", "max_length", "mask_prob", "seed")
        + ("weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "adam_bias_correction", "max_grad_norm")
        + ("lr_decay_power", "schedule"),
    ),
    "model shape": ("the discriminator's architecture (ModelConfig; the generator's follows generator_size)", ()),
    "objective and its variants": (
        "the paper's and the official code's objective options, and common variants (docs/faithfulness.md §3)",
        ("objective", "generator_size", "generator_layers", "tie_all_weights", "embedding_sharing", "gen_weight")
        + ("disc_weight",)
        + ("masking", "mask_token_prob", "random_token_prob", "sampling", "temperature", "disallow_correct")
        + ("uniform_generator", "gen_label_smoothing", "disc_label_smoothing"),
    ),
    "small-budget recipes (not in the paper)": (
        "data-dependent starts used by `tiny` and by the masked-LM baseline recipe (docs/pretraining.md)",
        ("word_init", "freeze_word_embeddings", "output_bias_init", "remove_top_word_direction"),
    ),
}


# what `electra bench` takes: the fields that change the time of a step
SPEED_FIELDS = (
    *(f.name for f in fields(ModelConfig)),
    *("objective", "generator_size", "generator_layers", "tie_all_weights", "embedding_sharing"),
    "freeze_word_embeddings",
    *("max_length", "mask_prob", "batch_size"),
)


def add_config_arguments(
    parser: argparse.ArgumentParser,
    *classes: type,
    title: str = "config fields",
    description: str = "override any field of the preset",
    prefix: str = "cfg__",
    describe: Callable[[str], str] | None = None,
    only: typing.Iterable[str] | None = None,
) -> None:
    """One `--field-name VALUE` option per (flattened) field of the dataclasses: bool as true/false, Literal as
    choices, `X | None` as X or "none", given values in `prefix` + name, absent ones unset. `describe(name)` gives
    the help text; `only` keeps those fields alone."""
    if describe is None:  # the presets built once here, not once per field
        configs = {name: preset(name) for name in PRESETS}
        describe = lambda field: preset_defaults(field, configs)  # noqa: E731
    grouped = PretrainConfig in classes and only is None  # the pretraining config, in PRETRAIN_GROUPS

    def title_of(name: str) -> str:
        return next((t for t, (_, names) in PRETRAIN_GROUPS.items() if name in names), "model shape")

    chosen = [(n, h) for n, h in flat_fields(*classes) if only is None or n in set(only)]
    if grouped:
        order = list(PRETRAIN_GROUPS)
        chosen.sort(key=lambda field: order.index(title_of(field[0])))  # stable: fields keep their order inside
    groups: dict[str, argparse._ArgumentGroup] = {}

    def group_of(name: str) -> argparse._ArgumentGroup:
        key = title_of(name) if grouped else title
        if key not in groups:
            text = f"{PRETRAIN_GROUPS[key][0]}; {description}" if grouped else description
            groups[key] = parser.add_argument_group(key, text)
        return groups[key]

    for name, hint in chosen:
        text = field_help(name, describe(name))
        kwargs: dict[str, Any] = dict(dest=prefix + name, default=argparse.SUPPRESS, metavar="V", help=text)
        args = typing.get_args(hint)
        optional = type(None) in args and len(args) == 2
        inner = next(a for a in args if a is not type(None)) if optional else hint
        if typing.get_origin(inner) is Literal:
            kwargs.update(choices=typing.get_args(inner), metavar=None)
        elif inner is bool:
            kwargs.update(type=_parse_bool)
        elif inner in (int, float, str):
            kwargs.update(type=_optional(inner) if optional else inner)
        group_of(name).add_argument("--" + name.replace("_", "-"), **kwargs)


def _optional(kind: type) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse


def preset_defaults(name: str, configs: dict[str, PretrainConfig] | None = None) -> str:
    """`default V (tiny: W; base, large: X)`: the official default of a config field and the presets that differ
    (`configs`: the presets, already built)."""
    base = PretrainConfig()
    default = getattr(base.model, name) if hasattr(base.model, name) else getattr(base, name)
    differing: dict[str, list[str]] = {}
    for preset_name, cfg in (configs or {n: preset(n) for n in PRESETS}).items():
        value = getattr(cfg.model, name) if hasattr(cfg.model, name) else getattr(cfg, name)
        if value != default:
            differing.setdefault(_show(value), []).append(preset_name)
    shown = "; ".join(f"{', '.join(names)}: {value}" for value, names in differing.items())
    return f"default {_show(default)}" + (f" ({shown})" if shown else "")


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {key[len("cfg__") :]: value for key, value in vars(args).items() if key.startswith("cfg__")}


# What each config field does, shown before its default in `--help` (docs/cli.md is generated from the same text).
FIELD_HELP: dict[str, str] = {
    # ModelConfig
    "vocab_size": "word pieces in the vocabulary (a new run takes its data's)",
    "embedding_size": "width of the embedding tables (projected to hidden_size when they differ)",
    "hidden_size": "width of the transformer layers",
    "num_hidden_layers": "transformer layers",
    "num_attention_heads": "attention heads per layer",
    "intermediate_size": "width of each layer's feed-forward block",
    "max_position_embeddings": "rows of the position table: the longest input the model can read",
    "type_vocab_size": "segment (token type) ids",
    "hidden_dropout_prob": "dropout after the embeddings and in every layer",
    "attention_probs_dropout_prob": "dropout of the attention weights",
    "layer_norm_eps": "LayerNorm epsilon",
    "initializer_range": "std of the truncated-normal initialisation",
    "pad_token_id": "id of [PAD]",
    # PretrainConfig: recipe
    "learning_rate": "peak learning rate",
    "batch_size": "examples per optimizer step (pretraining: over all processes)",
    "max_steps": "optimizer steps of the run",
    "warmup_steps": "steps of linear warm-up",
    "max_length": "tokens per example",
    "mask_prob": "share of the tokens the generator predicts",
    "seed": "seed of the initial weights, the data order and the masking",
    "weight_decay": "decoupled weight decay (not on biases and LayerNorm)",
    "adam_beta1": "Adam beta1",
    "adam_beta2": "Adam beta2",
    "adam_epsilon": "Adam epsilon",
    "adam_bias_correction": "Adam's bias correction (the official code has none)",
    "max_grad_norm": "clip the global gradient norm to this (pretraining: generator and discriminator together)",
    "lr_decay_power": "power of the polynomial decay to 0",
    "schedule": "official: decay over all steps, warm-up on top; warmup_then_decay: decay after the warm-up",
    # PretrainConfig: objective
    "objective": "electra: replaced-token detection; mlm: the masked-LM baseline alone; the paper's efficiency "
    "ablations (Table 5): electra-15: the discriminator's loss over the masked-out tokens only; replace-mlm: a "
    "full-size masked LM on the generator's samples instead of [MASK]; all-tokens-mlm: that, predicting every token "
    "with a copy mechanism; electric: Electric's noise-contrastive estimation with a two-tower cloze generator",
    "generator_size": "generator width as a fraction of the discriminator's",
    "generator_layers": "generator depth as a fraction of the discriminator's",
    "tie_all_weights": "the generator is the discriminator's own encoder with its own MLM head (official "
    "untied_generator=False; needs generator size and layers 1)",
    "embedding_sharing": "official: shared tables; gdes: gradient-disentangled (DeBERTaV3); none: separate",
    "gen_weight": "weight of the generator's MLM loss",
    "disc_weight": "weight of the discriminator's loss (the paper's lambda; replace-mlm and all-tokens-mlm weigh "
    "their masked LM's loss 1)",
    "masking": "official: k positions drawn with replacement; bernoulli: each position with mask_prob",
    "mask_token_prob": "share of the chosen positions replaced by [MASK]",
    "random_token_prob": "share of the chosen positions replaced by a random token (BERT: 0.1)",
    "sampling": "how the generator's replacements are drawn",
    "temperature": "sampling temperature of the generator",
    "disallow_correct": "never sample the original token (official option)",
    "uniform_generator": "replacements drawn uniformly, no generator (official ablation)",
    "gen_label_smoothing": "label smoothing of the generator's loss",
    "disc_label_smoothing": "label smoothing of the discriminator's loss",
    # PretrainConfig: small-budget recipes
    "word_init": "random: the initialiser's draw; ppmi: word vectors counted from the training data",
    "freeze_word_embeddings": "keep every word table at its start",
    "output_bias_init": "zero: official; prior: output biases at the data's base rates",
    "remove_top_word_direction": "undo the top direction training wrote into the word table when the run is used",
    # FinetuneConfig
    "layerwise_lr_decay": "learning rate x this per layer below the top (1: off)",
    "layer_decay_mode": "official: the official code's layer numbering; paper: the paper's",
    "warmup_proportion": "share of the steps spent warming up",
    "eval_batch_size": "examples per evaluation batch",
    "epochs": "passes over the training set",
    "loss_reduction": "sum: the official batch loss; mean: averaged over the batch",
    "head_dropout": "dropout before the task head",
    "head": "official: the official code's head; transformers: ElectraForSequenceClassification's",
    "double_unordered": "MRPC and STS-B: train also on each pair swapped (official)",
    "max_train_examples": "train on a random sample of this many examples (seeded, the same for every run)",
    "precision": "bf16: autocast (a GPU, or a CPU with bf16 instructions; slower on CPUs without them)",
}


def field_help(name: str, default: str) -> str:
    """`what it does; default ...` for a config field."""
    return f"{FIELD_HELP[name]}; {default}" if name in FIELD_HELP else default
