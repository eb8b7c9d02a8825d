"""Recipe options beyond the official one: embedding sharing (official / gdes / none), the warm-up of a shortened
run, fp32 generator logits under autocast."""

import pytest
import torch

from electra import init
from electra.config import preset
from electra.errors import ConfigError
from electra.objective import SpecialIds
from electra.optim import lr_factor, peak_lr_factor

SPECIAL = SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)


def small_cfg(**overrides):
    return preset(
        "tiny",
        vocab_size=40,
        hidden_size=32,
        embedding_size=16,
        num_hidden_layers=2,
        intermediate_size=64,
        max_length=16,
        batch_size=4,
        **overrides,
    )


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 40, (4, 16), generator=g)
    ids[:, 0] = SPECIAL.cls
    ids[:, -1] = SPECIAL.sep
    return ids, torch.ones_like(ids), torch.zeros_like(ids)


def word_tables(model):
    return model.generator.electra.embeddings.word_embeddings, model.discriminator.electra.embeddings.word_embeddings


def test_official_sharing_is_one_table():
    model = init.build(small_cfg(), SPECIAL)
    gen, disc = word_tables(model)
    assert gen is disc and model.generator.generator_lm_head.weight is gen.weight


def test_gdes_discriminator_sees_generator_tables_plus_deltas_and_its_gradient_stops_there():
    torch.manual_seed(0)
    model = init.build(small_cfg(embedding_sharing="gdes"), SPECIAL)
    gen, disc = word_tables(model)
    assert gen is not disc and torch.count_nonzero(disc.weight) == 0  # deltas start at zero
    ids, am, tt = batch()
    e_gen = model.generator.electra.embeddings
    e_disc = model.discriminator.electra.embeddings
    e_disc.LayerNorm.load_state_dict(e_gen.LayerNorm.state_dict())
    e_disc.eval(), e_gen.eval()
    torch.testing.assert_close(e_disc(ids, tt), e_gen(ids, tt))  # at initialisation: the generator's embeddings
    # the discriminator's loss reaches its deltas, never the generator's tables
    model.zero_grad()
    model.discriminator(ids, am, tt).sum().backward()
    assert gen.weight.grad is None and disc.weight.grad is not None and disc.weight.grad.abs().sum() > 0
    # the saved state holds the deltas under the usual names; merged, a plain discriminator computes the same
    with torch.no_grad():
        disc.weight.normal_()
    model.eval()
    before = model.discriminator(ids, am, tt)
    state = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    assert "electra.embeddings.word_embeddings.weight" in state
    e_disc.merge_base()
    torch.testing.assert_close(model.discriminator(ids, am, tt), before)
    torch.testing.assert_close(disc.weight, state["electra.embeddings.word_embeddings.weight"] + gen.weight)


def test_no_sharing_gives_separate_tables_trained_by_their_own_losses():
    model = init.build(small_cfg(embedding_sharing="none"), SPECIAL)
    gen, disc = word_tables(model)
    assert gen is not disc and model.generator.generator_lm_head.weight is gen.weight
    ids, am, tt = batch()
    model.discriminator(ids, am, tt).sum().backward()
    assert gen.weight.grad is None and disc.weight.grad.abs().sum() > 0
    model.zero_grad()
    model.generator(ids, am, tt).sum().backward()
    assert disc.weight.grad is None and gen.weight.grad.abs().sum() > 0


def test_generator_logits_are_fp32_under_autocast():
    model = init.build(small_cfg(), SPECIAL)
    ids, am, tt = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model.generator(ids, am, tt, torch.tensor([[1, 2]] * 4))
    assert logits.dtype == torch.float32


def test_shortened_run_keeps_the_warmup_fraction_and_a_warmup_longer_than_the_run_is_refused():
    cfg = preset("tiny", max_steps=30)
    assert cfg.warmup_steps == 3  # tiny: 125 of 1250 steps
    assert peak_lr_factor(cfg.max_steps, cfg.warmup_steps) == pytest.approx(0.9)
    assert preset("tiny", max_steps=30, warmup_steps=10).warmup_steps == 10  # given: kept
    assert preset("tiny", max_steps=5000).warmup_steps == 125  # longer: the preset's warm-up
    with pytest.raises(ConfigError, match="warmup_steps 125 is longer than the run"):
        preset("tiny", max_steps=30, warmup_steps=125)


def test_tiny_keeps_its_counted_word_table_and_trains_the_layers_at_the_official_epsilon():
    cfg = preset("tiny")
    assert cfg.word_init == "ppmi" and cfg.freeze_word_embeddings
    assert cfg.adam_epsilon == preset("small").adam_epsilon == 1e-6
    assert not cfg.remove_top_word_direction  # a frozen table has no movement to undo
    for name in ("small", "base", "large"):  # the paper presets: a random table that trains
        assert preset(name).word_init == "random" and not preset(name).freeze_word_embeddings


@pytest.mark.parametrize(("total", "warmup"), [(30, 200), (30, 30), (1200, 120), (10, 5), (7, 0), (100, 51)])
def test_peak_lr_factor_is_the_schedule_maximum(total, warmup):
    assert peak_lr_factor(total, warmup) == pytest.approx(max(lr_factor(t, total, warmup) for t in range(total)))


def test_prior_output_biases_start_the_heads_at_the_base_rates():
    cfg = small_cfg(output_bias_init="prior")
    model = init.build(cfg, SPECIAL)
    counts = torch.zeros(40, dtype=torch.long)
    counts[5:40] = torch.arange(35) * 10
    counts[SPECIAL.cls] = counts[SPECIAL.sep] = 1000  # never masked: no mass for them
    init.init_output_biases(model, counts)
    p = model.generator.generator_lm_head.bias.double().softmax(0)
    expected = (counts.double() + 1).index_fill(0, torch.tensor(list(SPECIAL)), 1.0)
    torch.testing.assert_close(p, expected / expected.sum())
    # k = round(0.15 * 16) = 2 draws with replacement over 14 candidates: 2 * (1 - 1/28) distinct of 16 tokens
    r = 2 * (1 - 1 / 28) / 16
    bias = model.discriminator.discriminator_predictions.dense_prediction.bias
    assert torch.sigmoid(bias).item() == pytest.approx(r, rel=1e-6)


def test_prior_biases_match_the_observed_replacement_rate():
    """The discriminator's starting bias predicts the share of replaced tokens the masking actually produces."""
    cfg = preset(
        "tiny",
        vocab_size=40,
        hidden_size=32,
        embedding_size=16,
        num_hidden_layers=1,
        intermediate_size=64,
        max_length=128,
        batch_size=64,
    )
    model = init.build(cfg, SPECIAL)
    init.init_output_biases(model, torch.ones(40, dtype=torch.long))
    ids = torch.randint(5, 40, (512, 128))
    masked = model.mask(ids, torch.ones_like(ids), torch.Generator().manual_seed(0))
    selected = torch.zeros_like(ids).scatter_(1, masked.positions, masked.weights.long()).bool()
    selected[:, 0] = False
    rate = selected.float().mean().item()
    predicted = torch.sigmoid(model.discriminator.discriminator_predictions.dense_prediction.bias).item()
    assert predicted == pytest.approx(rate, rel=0.02)
