"""Typed configuration: the transformer shape, the pretraining recipe, and named presets.

Every preset is a plain dict of field values checked against the dataclasses below, so an unknown key fails
loudly (with the nearest valid names) instead of being silently ignored. Values and sources are in
docs/faithfulness.md §1 (sizes, generator shape, pretraining defaults) and §5 (optimizer).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from electra.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_D = TypeVar("_D", bound="DataclassInstance")  # a config dataclass


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
        for name in (
            "vocab_size",
            "embedding_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
        ):
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


Objective = Literal["electra", "mlm"]


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run's result (not where it runs or how often it logs)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    objective: Objective = "electra"  # "mlm": BERT-style masked LM only (same encoder), for same-compute baselines
    generator_size: float = 0.25  # generator hidden / discriminator hidden (docs/faithfulness.md §1.3)
    generator_layers: float = 1.0  # generator depth / discriminator depth
    # official: generator and discriminator share the embedding tables and their LayerNorm (paper §3.2);
    # gdes: the discriminator adds its own zero-initialised deltas to the generator's tables, through which its
    # gradient does not flow (DeBERTaV3's gradient-disentangled sharing); none: separate embeddings
    embedding_sharing: Literal["official", "gdes", "none"] = "official"
    # zero: output biases start at 0 (official); prior: the generator's at the log-frequency of each token in the
    # data and the discriminator's at the log-odds of a token being replaced, so that predicting the base rates
    # needs no change of the representations (docs/pretraining.md, "Why short runs finetune worse than random")
    output_bias_init: Literal["zero", "prior"] = "zero"
    # random: the word table starts at the initialiser's random draw (official); ppmi: at word vectors of the
    # training data's co-occurrence counts (electra.wordvectors; not in the paper), the same scale
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
    # finetuning, probing or export (ELECTRA.remove_top_word_direction; not in the paper)
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
    # Adam's epsilon for the generator's own parameters (not the shared embeddings); None: adam_epsilon. Ours.
    generator_adam_epsilon: float | None = None
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
        if self.objective == "mlm" and self.generator_size != 1.0:
            # BERT baseline: the "generator" is the full-size model being trained
            self.generator_size = 1.0
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
        if self.generator_adam_epsilon is not None:
            check_range(self, "generator_adam_epsilon", 0, None, lo_open=True)
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
        # word knowledge no CPU run learns, counted in seconds (electra.wordvectors) and kept: the layers learn to
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
    is_int = lambda v: _conform(v, int)[0]  # (a value of another type is reported by the config's check)
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


# ---------------------------------------------------------------------------------------------- helpers


def from_dict(cls: type[_D], values: dict[str, Any], where: str = "") -> _D:
    """Build dataclass `cls` from a dict, rejecting unknown keys with a suggestion."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or cls.__name__}: expected an object of {cls.__name__} fields, got {values!r}")
    known = {f.name for f in fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(unknown_key_message(key, known, where or cls.__name__))
    return cls(**values)


def unknown_key_message(key: str, known: typing.Iterable[str], where: str) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown config key {key!r} in {where}{hint}"


def check_range(
    obj: DataclassInstance, name: str, lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False
) -> None:
    """Raise a ConfigError naming the field and its allowed range when obj.<name> lies outside it."""
    value = getattr(obj, name)
    bad = (lo is not None and (value < lo or (lo_open and value == lo))) or (
        hi is not None and (value > hi or (hi_open and value == hi))
    )
    if isinstance(value, bool) or not isinstance(value, int | float) or bad or value != value:  # (NaN)
        if hi is None:
            allowed = f"{'>' if lo_open else '>='} {lo:g}"
        else:
            allowed = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")


def check_fields(obj: DataclassInstance) -> None:
    """The one check of a config's values against its field annotations, whichever way they came (the command line,
    a `--config` file, a run's config.json, the Python API): `int` (not a bool), `float` (an int is taken and
    stored as a float), `bool`, `str`, `Literal[...]`, `X | None`, `list[X]`, and a nested config dataclass (a
    dict is built into it). Anything else raises a ConfigError naming the field, what it expects and what it got.
    Each config's `__post_init__` calls this first, then checks the ranges (`check_range`)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        hint = _hints(type(obj))[f.name]
        ok, conformed = _conform(value, hint)
        if not ok:
            raise ConfigError(f"{f.name} must be {_expected(hint)}, got {value!r}")
        if conformed is not value:
            setattr(obj, f.name, conformed)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _conform(value: Any, hint: Any) -> tuple[bool, Any]:
    """(whether `value` is of type `hint`, the value to store: an int for a float field becomes a float, a dict for a
    config dataclass field becomes that dataclass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arg in sorted(args, key=lambda a: a is not type(None)):  # None first
            ok, conformed = _conform(value, arg)
            if ok:
                return True, conformed
        return False, value
    if hint is type(None):
        return value is None, value
    if origin is Literal:  # (True is not 1, and 1.0 not 1)
        return any(type(value) is type(a) and value == a for a in args), value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)  # (NaN: the range checks)
        return ok, float(value) if ok else value
    if origin is list:
        if not isinstance(value, list | tuple):
            return False, value
        items = [_conform(v, args[0] if args else Any) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if dataclasses.is_dataclass(hint):
        if isinstance(value, dict):
            return True, from_dict(hint, value)
        return isinstance(value, hint), value
    if isinstance(hint, type):
        return isinstance(value, hint), value
    return True, value


def _expected(hint: Any) -> str:
    """What a value of type `hint` is, in words: "an integer", "a number or none", "one of 'a', 'b'"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [_expected(a) for a in args if a is not type(None)]
        return " or ".join(kinds) + (" or none" if type(None) in args else "")
    if origin is Literal:
        return f"one of {', '.join(map(repr, args))}"
    if origin is list:
        return "a list" + (f" of {_expected(args[0]).split(' ', 1)[-1]}s" if args and args[0] is not Any else "")
    if dataclasses.is_dataclass(hint):
        return f"an object of {hint.__name__} fields"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))


# ---------------------------------------------------------------------------------------------- CLI support


def flat_fields(*classes: type) -> list[tuple[str, Any]]:
    out = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                continue
            out.append((f.name, hints[f.name]))
    return out


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def add_config_arguments(
    parser: argparse.ArgumentParser,
    *classes: type,
    title: str = "config fields",
    description: str = "override any field of the preset",
    prefix: str = "cfg__",
    describe: Callable[[str], str] | None = None,
) -> None:
    """One `--field-name VALUE` option per field of the dataclasses (nested dataclass fields are their own class's
    fields): bool as true/false, Literal as choices, `X | None` as X or "none". Given values land in `prefix` +
    name (see `overrides_from_args`); absent ones are not set, so the preset's value applies. `describe(name)`
    gives the help text (the default)."""
    group = parser.add_argument_group(title, description)
    if describe is None:  # the presets built once here, not once per field
        configs = {name: preset(name) for name in PRESETS}
        describe = lambda field: preset_defaults(field, configs)  # noqa: E731
    for name, hint in flat_fields(*classes):
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
        group.add_argument("--" + name.replace("_", "-"), **kwargs)


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
