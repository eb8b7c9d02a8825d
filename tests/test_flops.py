"""FLOP counting reproduces the paper's compute figures (docs/faithfulness.md §7)."""

import pytest

from electra.config import preset
from electra.flops import EncoderShape, electra_train_flops, forward_flops, train_flops_per_sequence


@pytest.mark.parametrize(
    "name,steps,expected",
    [
        ("small", 1e6, 1.294e18),
        ("base", 766_000, 6.425e19),
        ("large", 400_000, 7.118e20),
        ("large++", 1.75e6, 3.114e21),
    ],
)
def test_presets_reproduce_the_spec_table(name, steps, expected):
    cfg = preset(name)
    assert train_flops_per_sequence(cfg) * cfg.batch_size * steps == pytest.approx(expected, rel=5e-4)


def test_bert_small_baseline_and_inference():
    small = EncoderShape(256, 12, 128, embedding=128)
    assert electra_train_flops(None, small, 128, 1.45e6) == pytest.approx(1.419e18, rel=5e-4)
    # inference of the discriminator on one sequence of 128: small 3.68e9, base 2.86e10, large 8.75e10 (faithfulness §7)
    assert forward_flops(small, "binary") == pytest.approx(3.68e9, rel=2e-3)
    assert forward_flops(EncoderShape(768, 12, 128), "binary") == pytest.approx(2.86e10, rel=2e-3)
    assert forward_flops(EncoderShape(1024, 24, 128), "binary") == pytest.approx(8.75e10, rel=2e-3)


def test_backward_counts_as_forward_and_the_layernorm_quirk_is_tiny():
    cfg = preset("small")
    disc = EncoderShape.of(cfg.model, 128)
    gen = EncoderShape.of(cfg.generator_model, 128, embedding=128)
    fwd = forward_flops(disc, "binary") + forward_flops(gen, "mlm")
    assert train_flops_per_sequence(cfg) == pytest.approx(2 * fwd)
    fixed = train_flops_per_sequence(cfg, faithful=False)
    assert fixed > train_flops_per_sequence(cfg) and fixed / train_flops_per_sequence(cfg) - 1 < 1e-3
    assert train_flops_per_sequence(preset("small", objective="mlm")) < train_flops_per_sequence(preset("base"))
