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
        ("objective", "generator_size", "generator_layers", "embedding_sharing", "gen_weight", "disc_weight")
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
    *("objective", "generator_size", "generator_layers", "embedding_sharing", "freeze_word_embeddings"),
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
    """One `--field-name VALUE` option per field of the dataclasses (nested dataclass fields are their own class's
    fields): bool as true/false, Literal as choices, `X | None` as X or "none". Given values land in `prefix` +
    name (see `overrides_from_args`); absent ones are not set, so the preset's value applies. `describe(name)`
    gives the help text (the default). The pretraining config's fields are shown in `PRETRAIN_GROUPS`; `only`
    keeps those fields alone."""
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
        kwargs: dict[str, Any] = dict(dest=prefix + name, default=argparse.SUPPRESS, metavar="V", help=describe(name))
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
