"""Presets carry the official numbers; unknown keys fail with a suggestion; the CLI can override any field."""

import argparse
import re
import typing

import pytest

from electra.cli.options import add_config_arguments, overrides_from_args
from electra.config import PRESETS, FinetuneConfig, PretrainConfig, preset
from electra.errors import ConfigError
from electra.finetune.fields import FinetuneFields

# (lr, batch, steps, max_length, mask_prob, generator_size, hidden, layers, embedding) from faithfulness §1.4, §1.5
EXPECTED = {
    "small": (5e-4, 128, 1_000_000, 128, 0.15, 0.25, 256, 12, 128),
    "small++": (5e-4, 128, 4_000_000, 512, 0.15, 1.0, 256, 12, 128),
    "base": (2e-4, 256, 766_000, 512, 0.15, 1 / 3, 768, 12, 768),
    "large": (2e-4, 2048, 400_000, 512, 0.25, 0.25, 1024, 24, 1024),
    "large++": (2e-4, 2048, 1_750_000, 512, 0.25, 0.25, 1024, 24, 1024),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_presets_match_spec(name):
    c = preset(name)
    lr, batch, steps, L, p, gen, H, n, E = EXPECTED[name]
    assert (c.learning_rate, c.batch_size, c.max_steps, c.max_length, c.mask_prob) == (lr, batch, steps, L, p)
    assert c.generator_size == pytest.approx(gen)
    assert (c.model.hidden_size, c.model.num_hidden_layers, c.model.embedding_size) == (H, n, E)
    assert c.model.num_attention_heads == H // 64 and c.model.intermediate_size == 4 * H
    assert (c.warmup_steps, c.weight_decay, c.adam_epsilon, c.gen_weight, c.disc_weight) == (10_000, 0.01, 1e-6, 1, 50)


@pytest.mark.parametrize(
    "name,hidden,ffn,heads",
    [("small", 64, 256, 1), ("small++", 256, 1024, 4), ("base", 256, 1024, 4), ("large", 256, 1024, 4)],
)
def test_generator_shape_spec_table(name, hidden, ffn, heads):
    g = preset(name).generator_model
    assert (g.hidden_size, g.intermediate_size, g.num_attention_heads) == (hidden, ffn, heads)
    d = preset(name).model
    assert g.num_hidden_layers == d.num_hidden_layers and g.embedding_size == d.embedding_size


def test_unknown_keys_fail_with_suggestion():
    with pytest.raises(ConfigError, match="unknown config key 'learning_rte'.*'learning_rate'"):
        preset("small", learning_rte=1e-3)
    with pytest.raises(ConfigError, match="unknown preset 'smal'"):
        preset("smal")
    with pytest.raises(ConfigError, match="masking must be one of"):
        preset("tiny", masking="random")
    with pytest.raises(ConfigError, match="max_length must be at least 5"):
        preset("tiny", max_length=4)


def test_round_trip_through_dict():
    c = preset("base", mask_prob=0.2, hidden_size=128)
    assert PretrainConfig(**c.to_dict()) == c
    assert c.model.num_attention_heads == 2 and c.model.intermediate_size == 512  # derived from the new width


def test_every_field_is_a_cli_option():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, PretrainConfig, type(preset("tiny").model))
    args = parser.parse_args(
        ["--learning-rate", "3e-4", "--hidden-size", "96", "--disallow-correct", "true", "--sampling", "multinomial"]
    )
    over = overrides_from_args(args)
    assert over == {"learning_rate": 3e-4, "hidden_size": 96, "disallow_correct": True, "sampling": "multinomial"}
    c = preset("tiny", **over)
    assert c.model.hidden_size == 96 and c.sampling == "multinomial"
    assert set(PRESETS) >= {"tiny", "small", "small++", "base", "base++", "large", "large++"}


def test_the_finetuning_functions_recipe_keywords_are_the_config_fields():
    """`finetune`, `finetune_own` and `finetune_tagging` type their recipe keywords as `FinetuneFields`,
    `finetune_squad` as `SquadFields`: the names and types of `FinetuneConfig` (SQuAD: less `head`, its own argument,
    and with `QAOptions`), so that the public signatures say what they take and cannot drift from the configs."""
    from electra.finetune.qa.finetune import QAOptions, SquadFields

    config = typing.get_type_hints(FinetuneConfig)
    assert typing.get_type_hints(FinetuneFields) == config
    squad = {k: v for k, v in config.items() if k != "head"} | typing.get_type_hints(QAOptions)
    assert typing.get_type_hints(SquadFields) == squad


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("hidden_dropout_prob", 2.0, "in [0, 1)"),
        ("type_vocab_size", 1, ">= 2"),
        ("max_grad_norm", -1.0, "> 0"),
        ("adam_beta1", 1.5, "in [0, 1)"),
        ("learning_rate", -1e-4, "> 0"),
        ("generator_size", 0.0, "in (0, 1]"),
        ("temperature", 0.0, "> 0"),
        ("weight_decay", -0.1, ">= 0"),
        ("vocab_size", 0, ">= 1"),
        ("learning_rate", float("nan"), "> 0"),
    ],
)
def test_out_of_range_values_name_the_field_and_the_allowed_range(field, value, allowed):
    with pytest.raises(ConfigError, match=re.escape(f"{field} must be {allowed}, got {value!r}")):
        preset("tiny", **{field: value})


def test_pretrain_settings_are_the_run_options_and_config_fields():
    """`electra.api.pretrain(out, preset, **settings: Unpack[PretrainSettings])`: the typed keywords are exactly the
    run options (less `out`) and the flat config fields, with their types (paths may also be os.PathLike)."""
    import dataclasses
    import os

    from electra.config import ModelConfig, flat_fields
    from electra.train.fields import PretrainSettings
    from electra.train.rundir import RunOptions

    typed = typing.get_type_hints(PretrainSettings)
    run = {k: v for k, v in typing.get_type_hints(RunOptions).items() if k != "out"}
    config = dict(flat_fields(PretrainConfig, ModelConfig))
    assert typed.keys() == run.keys() | config.keys() and not run.keys() & config.keys()
    for name, hint in {**run, **config}.items():
        widened = hint | os.PathLike[str] if name in ("data", "vocab", "data_cache", "glue_dir") else hint
        assert typed[name] in (hint, widened), name
    assert {f.name for f in dataclasses.fields(RunOptions)} - {"out"} == set(run)
