"""Word vectors from co-occurrence counts (`--word-init ppmi`): the counts, the PPMI formula, what the vectors
capture, and how they enter the word tables."""

import numpy as np
import pytest
import torch

from electra import init
from electra.config import preset
from electra.init import cooccurrence, ppmi, ppmi_vectors
from electra.objective import SpecialIds

SPECIAL = SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)


def test_cooccurrence_counts_pairs_within_the_window_and_never_across_examples():
    examples = [np.array([5, 6, 7]), np.array([7, 5]), np.array([8])]
    one = cooccurrence(examples, 10, window=1).toarray()
    expected = np.zeros((10, 10))
    for a, b in [(5, 6), (6, 7), (7, 5)]:
        expected[a, b] += 1
        expected[b, a] += 1
    np.testing.assert_array_equal(one, expected)
    two = cooccurrence(examples, 10, window=2).toarray()
    assert two[5, 7] == two[7, 5] == 2  # distance 2 in the first example, 1 in the second
    assert two[8].sum() == 0  # alone in its example
    assert cooccurrence([np.array([3, 3])], 4, window=1)[3, 3] == 2  # a pair of equal ids counts both ways


def test_cooccurrence_chunks_add_up_to_one_pass(monkeypatch):
    rng = np.random.default_rng(0)
    examples = [rng.integers(0, 30, rng.integers(1, 40)) for _ in range(200)]
    whole = cooccurrence(examples, 30).toarray()
    monkeypatch.setattr("electra.init.CHUNK_TOKENS", 50)
    np.testing.assert_array_equal(cooccurrence(examples, 30).toarray(), whole)


def test_ppmi_is_the_positive_part_of_smoothed_pmi():
    rng = np.random.default_rng(1)
    counts = rng.poisson(2.0, (12, 12)).astype(float)
    counts = counts + counts.T
    counts[3] = counts[:, 3] = 0  # an unseen id: its row and column stay zero
    from scipy.sparse import csr_matrix

    got = ppmi(csr_matrix(counts)).toarray()
    total = counts.sum()
    p_w = counts.sum(1) / total
    c = counts.sum(0) ** 0.75
    p_c = c / c.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.log(counts / total / np.outer(p_w, p_c))
    expected = np.where((counts > 0) & (expected > 0), expected, 0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def alike_corpus(seed=0):
    """Ids 5 and 6 are used in the same contexts (10-14), 7 and 8 in others (15-19)."""
    rng = np.random.default_rng(seed)
    examples = []
    for _ in range(400):
        words, context = (
            (rng.choice([5, 6]), range(10, 15)) if rng.random() < 0.5 else (rng.choice([7, 8]), range(15, 20))
        )
        seq = list(rng.choice(list(context), 8))
        seq.insert(int(rng.integers(0, 9)), words)
        examples.append(np.array(seq))
    return examples


def cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_ppmi_vectors_put_words_used_alike_together_and_are_deterministic():
    vectors = ppmi_vectors(alike_corpus(), 20, dim=4)
    assert vectors.shape == (20, 4) and vectors.dtype == np.float32
    assert cos(vectors[5], vectors[6]) > 0.9 and cos(vectors[7], vectors[8]) > 0.9
    assert abs(cos(vectors[5], vectors[7])) < 0.2
    assert not vectors[:5].any()  # ids that never occur: zero rows
    np.testing.assert_array_equal(ppmi_vectors(alike_corpus(), 20, dim=4), vectors)


def small_cfg(**overrides):
    return preset(
        "tiny",
        vocab_size=20,
        hidden_size=32,
        embedding_size=4,
        num_hidden_layers=1,
        intermediate_size=64,
        max_length=16,
        **overrides,
    )


@pytest.mark.parametrize("sharing", ["official", "none", "gdes"])
def test_init_word_vectors_sets_the_seen_rows_at_the_initialisers_scale(sharing):
    torch.manual_seed(0)
    model = init.build(small_cfg(embedding_sharing=sharing), SPECIAL)
    gen = model.generator.electra.embeddings.word_embeddings.weight
    disc = model.discriminator.electra.embeddings.word_embeddings.weight
    gen_before, disc_before = gen.detach().clone(), disc.detach().clone()
    examples = alike_corpus()
    vectors = torch.from_numpy(ppmi_vectors(examples, 20, dim=4))
    counts = torch.from_numpy(np.bincount(np.concatenate(examples), minlength=20))
    counts[SPECIAL.cls] = 3  # a special token that occurs keeps its random row
    assert init.init_word_vectors(model, vectors, counts) == 14  # ids 5-8 and 10-19
    seen = torch.tensor([5, 6, 7, 8, *range(10, 20)])
    kept = torch.tensor([0, 1, 2, 3, 4, 9])
    scale = 0.02 / vectors[seen].double().std()
    torch.testing.assert_close(gen[seen].double(), vectors[seen].double() * scale, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(gen[kept], gen_before[kept])
    if sharing == "official":
        assert disc is gen
    elif sharing == "none":  # the discriminator's own table starts at the same vectors
        torch.testing.assert_close(disc[seen], gen[seen])
        torch.testing.assert_close(disc[kept], disc_before[kept])
    else:  # gdes: the deltas stay zero, so the discriminator reads the generator's table
        assert torch.count_nonzero(disc) == 0


def test_init_word_vectors_with_nothing_seen_changes_nothing():
    model = init.build(small_cfg(), SPECIAL)
    before = model.generator.electra.embeddings.word_embeddings.weight.detach().clone()
    assert init.init_word_vectors(model, torch.zeros(20, 4), torch.zeros(20, dtype=torch.long)) == 0
    torch.testing.assert_close(model.generator.electra.embeddings.word_embeddings.weight, before)


def test_word_init_is_a_checked_config_value():
    from electra.errors import ConfigError

    assert preset("small").word_init == "random"  # the official recipe
    with pytest.raises(ConfigError, match="word_init"):
        preset("tiny", word_init="glove")
