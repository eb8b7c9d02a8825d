"""The replaced-token-detection objective against the official formulas (docs/faithfulness.md §3)."""

import math

import pytest
import torch
import torch.nn.functional as F

from electra import init
from electra import objective as obj
from electra.config import preset

SPECIAL = obj.SpecialIds()  # BERT uncased ids: pad 0, unk 100, cls 101, sep 102, mask 103


def make_batch(lengths, L=128, seed=0):
    """[CLS] tokens [SEP] padded to L, ordinary ids drawn from 1000..29999."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), L, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(1000, 30000, (n,), generator=g)
        ids[i, 0], ids[i, n - 1] = SPECIAL.cls, SPECIAL.sep
        mask[i, :n] = 1
    return ids, mask


@pytest.mark.parametrize("mask_prob,L,N", [(0.15, 128, 19), (0.15, 512, 79), (0.25, 512, 130)])
def test_max_predictions(mask_prob, L, N):
    assert preset("small", mask_prob=mask_prob, max_length=L).max_predictions == N


def test_num_to_mask_matches_spec_table():
    table = {1: 1, 4: 1, 7: 1, 10: 2, 13: 2, 20: 3, 30: 4, 50: 8, 70: 10, 100: 15, 110: 16, 126: 19, 127: 19, 128: 19}
    n = torch.tensor(list(table))
    assert obj.num_to_mask(n, 0.15, 19).tolist() == list(table.values())


def test_num_to_mask_uses_float32_and_half_to_even():
    # float32(190) * float32(0.15) = 28.500002 -> 29 (a float64 product would be exactly 28.5 -> 28)
    n = torch.tensor([10, 30, 70, 190, 350, 390])
    assert obj.num_to_mask(n, 0.15, 1000).tolist() == [2, 4, 10, 29, 53, 59]


def test_mask_tokens_selection_rules():
    lengths = [128, 100, 30, 7, 2]
    ids, mask = make_batch(lengths)
    ids[0, 5] = SPECIAL.mask  # an existing [MASK] is never selected
    ids[0, 6] = SPECIAL.unk  # [UNK] can be
    g = torch.Generator().manual_seed(1)
    m = obj.mask_tokens(ids, mask, 0.15, 19, SPECIAL, rng=g)
    assert m.positions.shape == (5, 19)
    k = m.weights.sum(1).tolist()
    assert k == [19, 15, 4, 1, 0]  # the last row has only [CLS][SEP]: nothing maskable
    used = m.weights.bool()
    chosen = ids.gather(1, m.positions)
    assert not torch.isin(chosen[used], torch.tensor([SPECIAL.cls, SPECIAL.sep, SPECIAL.mask, SPECIAL.pad])).any()
    assert (m.positions[~used] == 0).all() and (m.targets[~used] == 0).all()
    assert torch.equal(m.targets[used], chosen[used])
    # corruption only touches selected positions, and only with [MASK]
    changed = m.input_ids != ids
    assert (m.input_ids[changed] == SPECIAL.mask).all()
    for row in range(5):
        assert set(changed[row].nonzero().flatten().tolist()) <= set(m.positions[row][used[row]].tolist())


def test_mask_tokens_draws_with_replacement_and_85_15_split():
    ids, mask = make_batch([128] * 2000, seed=3)
    m = obj.mask_tokens(ids, mask, 0.15, 19, SPECIAL, rng=torch.Generator().manual_seed(2))
    # duplicates occur: expected ~17.69 unique positions of 19 draws over 126 candidates (docs/faithfulness.md §3.1)
    unique = torch.tensor([len(set(r.tolist())) for r in m.positions]).float().mean()
    assert abs(unique - 17.69) < 0.1
    # share of selected (unique) positions that became [MASK]; a duplicate is [MASK] if either slot says so
    selected = torch.zeros_like(ids, dtype=torch.bool).scatter_(1, m.positions, True)
    selected[:, 0] = False
    masked = (m.input_ids == SPECIAL.mask) & selected
    single = torch.zeros_like(ids).scatter_add_(1, m.positions, torch.ones_like(m.positions)) == 1
    share = (masked & single).sum() / (selected & single).sum()
    sd = math.sqrt(0.85 * 0.15 / float((selected & single).sum()))
    assert abs(float(share) - 0.85) < 5 * sd


def test_bert_style_corruption_split():
    ids, mask = make_batch([128] * 2000, seed=4)
    m = obj.mask_tokens(
        ids,
        mask,
        0.15,
        19,
        SPECIAL,
        mask_token_prob=0.8,
        random_token_prob=0.1,
        vocab_size=30522,
        rng=torch.Generator().manual_seed(5),
    )
    single = torch.zeros_like(ids).scatter_add_(1, m.positions, m.weights.long()) == 1
    n = single.sum()
    masked = ((m.input_ids == SPECIAL.mask) & single).sum() / n
    kept = ((m.input_ids == ids) & single).sum() / n
    assert abs(float(masked) - 0.8) < 0.01 and abs(float(kept) - 0.1 - 0.1 / 30522 * 0) < 0.01


def test_bernoulli_masking_rate_and_exclusions():
    ids, mask = make_batch([100] * 500, seed=6)
    ids[:, 10] = SPECIAL.unk
    m = obj.mask_tokens_bernoulli(ids, mask, 0.15, SPECIAL, rng=torch.Generator().manual_seed(7))
    used = m.weights.bool()
    assert not (ids.gather(1, m.positions)[used] == SPECIAL.unk).any()  # richarddwang excludes [UNK]
    rate = used.sum() / (98 * 500)
    assert abs(float(rate) - 0.15) < 0.01
    assert all(len(set(r[w].tolist())) == int(w.sum()) for r, w in zip(m.positions, used, strict=True))  # no duplicates


def test_replace_tokens_label_rule_and_duplicates():
    ids = torch.tensor([[101, 10, 11, 12, 13, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    positions = torch.tensor([[1, 2, 3, 3, 0]])
    weights = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    sampled = torch.tensor([[10, 50, 20, 31, 77]])  # slot 0 samples the original; slot 4 is unused
    fake, labels = obj.replace_tokens(ids, mask, positions, weights, sampled)
    assert fake.tolist() == [[101, 10, 50, (20 + 31) // 2, 13, 102, 0]]
    assert labels.tolist() == [[False, False, True, True, False, False, False]]


def test_gumbel_sampling_follows_softmax():
    logits = torch.tensor([[[2.0, 1.0, 0.0, -1.0]]]).expand(1, 20000, 4)
    s = obj.sample_replacements(logits, 1.0, "gumbel", torch.Generator().manual_seed(0))
    freq = torch.bincount(s.flatten(), minlength=4).float() / s.numel()
    torch.testing.assert_close(freq, logits[0, 0].softmax(-1), atol=0.012, rtol=0)
    hot = obj.sample_replacements(logits, 0.25, "multinomial", torch.Generator().manual_seed(0))
    freq_t = torch.bincount(hot.flatten(), minlength=4).float() / hot.numel()
    torch.testing.assert_close(freq_t, (logits[0, 0] / 0.25).softmax(-1), atol=0.012, rtol=0)
    never = obj.sample_replacements(logits, 1.0, "gumbel", None, disallow=torch.zeros(1, 20000, dtype=torch.long))
    assert not (never == 0).any()


def test_losses_against_hand_computation():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], [[1.0, 3.0, 0.0], [5.0, 0.0, 0.0]]])
    targets = torch.tensor([[0, 2], [1, 0]])
    weights = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    nll = [-(2 - math.log(math.exp(2) + 1 + math.exp(-1))), math.log(3), -(3 - math.log(math.e + math.exp(3) + 1))]
    expected = sum(nll) / (3 + 1e-6)
    assert obj.generator_loss(logits, targets, weights).item() == pytest.approx(expected, rel=1e-6)

    d_logits = torch.tensor([[0.5, -1.0, 2.0, 0.0]])
    labels = torch.tensor([[False, True, True, False]])
    amask = torch.tensor([[1, 1, 1, 0]])  # the padded token is excluded; [CLS] (index 0) is included

    def bce(z, y):
        return -(y * math.log(1 / (1 + math.exp(-z))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-z))))

    expected = (bce(0.5, 0) + bce(-1.0, 1) + bce(2.0, 1)) / (3 + 1e-6)
    assert obj.discriminator_loss(d_logits, labels, amask).item() == pytest.approx(expected, rel=1e-6)
    smoothed = (bce(0.5, 0.05) + bce(-1.0, 0.95) + bce(2.0, 0.95)) / (3 + 1e-6)
    assert obj.discriminator_loss(d_logits, labels, amask, 0.1).item() == pytest.approx(smoothed, rel=1e-6)
    expected_ls = F.cross_entropy(logits.reshape(-1, 3)[:3], targets.reshape(-1)[:3], label_smoothing=0.1).item()
    assert obj.generator_loss(logits, targets, weights, 0.1).item() == pytest.approx(expected_ls, rel=1e-5)


def test_electra_forward_total_loss_and_gradient_flow():
    cfg = preset("tiny", vocab_size=200, num_hidden_layers=2, max_length=32)
    model = init.build(cfg, obj.SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4))
    ids = torch.randint(5, 200, (4, 32))
    ids[:, 0], ids[:, -1] = 2, 3
    mask, types = torch.ones_like(ids), torch.zeros_like(ids)
    out = model(ids, mask, types, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.loss.detach(), out.gen_loss + 50 * out.disc_loss)
    # the discriminator loss reaches the shared embeddings, never the generator's own weights
    model.zero_grad()
    model.cfg = preset("tiny", vocab_size=200, num_hidden_layers=2, max_length=32, gen_weight=0.0)
    model(ids, mask, types, torch.Generator().manual_seed(0)).loss.backward()
    assert model.discriminator.electra.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    gen = model.generator
    for p in (gen.generator_predictions.dense.weight, gen.electra.encoder.layer[0].output.dense.weight):
        assert p.grad is None or p.grad.abs().sum() == 0
    # sharing: one embedding module, the generator's output layer is the word embedding matrix
    assert model.generator.electra.embeddings is model.discriminator.electra.embeddings
    assert model.generator.generator_lm_head.weight is model.discriminator.electra.embeddings.word_embeddings.weight
    assert model.generator.electra.embeddings_project is not model.discriminator.electra.embeddings_project
    # same seed, same result (dropout off); another seed, other masks
    model.eval()
    a = model(ids, mask, types, torch.Generator().manual_seed(0))
    b = model(ids, mask, types, torch.Generator().manual_seed(0))
    c = model(ids, mask, types, torch.Generator().manual_seed(1))
    assert a.loss.item() == b.loss.item() != c.loss.item()


def test_init_follows_spec():
    model = init.build(preset("small"), SPECIAL)
    w = model.discriminator.electra.encoder.layer[0].intermediate.dense.weight
    assert w.abs().max() <= 0.04 and abs(w.std().item() - 0.02 * 0.8796) < 0.001  # trunc-normal, not rescaled
    proj = model.discriminator.electra.embeddings_project.weight  # glorot-uniform 128 -> 256
    bound = math.sqrt(6 / (128 + 256))
    assert proj.abs().max() <= bound and proj.abs().max() > 0.9 * bound
    assert (model.discriminator.discriminator_predictions.dense_prediction.bias == 0).all()
    assert (model.generator.generator_predictions.LayerNorm.weight == 1).all()


def test_mlm_objective_and_uniform_generator():
    ids = torch.randint(5, 200, (4, 32))
    ids[:, 0], ids[:, -1] = 2, 3
    mask, types = torch.ones_like(ids), torch.zeros_like(ids)
    special = obj.SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)

    bert = init.build(preset("tiny", vocab_size=200, max_length=32, objective="mlm"), special)
    assert not hasattr(bert, "discriminator")
    assert bert.generator.config.hidden_size == 128  # the full-size model is the one trained
    out = bert(ids, mask, types, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.loss.detach(), out.gen_loss)

    uniform = init.build(preset("tiny", vocab_size=200, max_length=32, uniform_generator=True), special)
    out = uniform(ids, mask, types, torch.Generator().manual_seed(0))
    assert out.gen_loss.item() == pytest.approx(math.log(200), rel=1e-5)  # uniform over the vocabulary
    assert out.replaced_fraction > 0
