"""PretrainLoader: layout, epochs as permutations, rank sharding, exact resume, held-out set."""

import json

import numpy as np
import pytest
import torch
from _data_helpers import random_documents, write_corpus, write_vocab

from electra.data import PretrainLoader, prepare_corpus, read_examples
from electra.errors import ElectraError
from electra.tokenizer import load_tokenizer

L = 24


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loader")
    corpus = write_corpus(tmp / "c.txt", random_documents(3, 60))
    tok = load_tokenizer(write_vocab(tmp / "vocab.txt"))
    return prepare_corpus([str(corpus)], tok, L, tmp / "ds", holdout=10)


def test_batch_layout_matches_the_stored_examples(dataset):
    loader = PretrainLoader(dataset, global_batch_size=8, seed=1)
    examples = list(read_examples(dataset))
    batch = next(loader)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(v.dtype == torch.int64 and v.shape == (8, L) for v in batch.values())
    indices = loader.train_index[loader.permutation(0)[:8]]
    tok = loader.tokenizer
    for row, i in enumerate(indices):
        ids, a_len = examples[i]
        n = len(ids)
        assert batch["input_ids"][row, :n].tolist() == ids and batch["input_ids"][row, n:].eq(0).all()
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (L - n)
        assert batch["token_type_ids"][row].tolist() == [0] * a_len + [1] * (n - a_len) + [0] * (L - n)
        row_ids = batch["input_ids"][row].tolist()
        assert row_ids[0] == tok.cls_id and row_ids[a_len - 1] == tok.sep_id and row_ids[n - 1] == tok.sep_id


def test_each_epoch_is_a_permutation_of_the_training_examples(dataset):
    loader = PretrainLoader(dataset, global_batch_size=16, seed=0, rank=0, world_size=1)
    examples = list(read_examples(dataset))
    seen = []
    for _ in range(loader.batches_per_epoch):
        batch = next(loader)
        for row in range(16):
            n = int(batch["attention_mask"][row].sum())
            seen.append(tuple(batch["input_ids"][row, :n].tolist()))
    expected = [tuple(examples[i][0]) for i in loader.train_index[loader.permutation(0)[: len(seen)]]]
    assert seen == expected
    assert len(set(loader.permutation(0).tolist())) == loader.num_train_examples
    assert loader.num_train_examples == loader.num_examples - 10
    next(loader)
    assert loader.epoch == 1 and loader.batch == 1
    assert not np.array_equal(loader.permutation(1), PretrainLoader(dataset, 16).permutation(0))


def test_ranks_take_contiguous_slices_of_the_same_global_batch(dataset):
    whole = PretrainLoader(dataset, global_batch_size=12, seed=4)
    shards = [PretrainLoader(dataset, global_batch_size=12, seed=4, rank=r, world_size=3) for r in range(3)]
    for _ in range(whole.batches_per_epoch + 2):  # across an epoch boundary
        full = next(whole)
        parts = [next(s) for s in shards]
        for key in full:
            assert all(p[key].shape == (4, L) for p in parts)
            assert torch.equal(torch.cat([p[key] for p in parts]), full[key])
    with pytest.raises(ElectraError, match="multiple of the world size 5"):
        PretrainLoader(dataset, global_batch_size=12, world_size=5)


def test_resume_equals_an_uninterrupted_pass(dataset):
    straight = PretrainLoader(dataset, global_batch_size=8, seed=7)
    reference = [next(straight) for _ in range(straight.batches_per_epoch + 5)]
    first = PretrainLoader(dataset, global_batch_size=8, seed=7)
    cut = straight.batches_per_epoch - 2
    for _ in range(cut):
        next(first)
    state = json.loads(json.dumps(first.state_dict()))  # JSON-able
    resumed = PretrainLoader(dataset, global_batch_size=8, seed=7)
    resumed.load_state_dict(state)
    for expected in reference[cut:]:
        got = next(resumed)
        assert all(torch.equal(got[k], expected[k]) for k in expected)
    with pytest.raises(ElectraError, match="global_batch_size"):
        PretrainLoader(dataset, global_batch_size=4, seed=7).load_state_dict(state)
    with pytest.raises(ElectraError, match="seed"):
        PretrainLoader(dataset, global_batch_size=8, seed=8).load_state_dict(state)
    # the global order does not depend on the world size: resume on 2 ranks gives the two halves
    halves = [PretrainLoader(dataset, global_batch_size=8, seed=7, rank=r, world_size=2) for r in range(2)]
    for h in halves:
        h.load_state_dict(state)
    parts = [next(h) for h in halves]
    assert torch.equal(torch.cat([p["input_ids"] for p in parts]), reference[cut]["input_ids"])


def test_holdout_is_fixed_spread_and_never_trained_on(dataset):
    loader = PretrainLoader(dataset, global_batch_size=8)
    n = loader.num_examples
    assert loader.holdout_index.tolist() == [(2 * i + 1) * n // 20 for i in range(10)]
    assert not set(loader.holdout_index.tolist()) & set(loader.train_index.tolist())
    examples = list(read_examples(dataset))
    batches = list(loader.holdout(batch_size=4))
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4, 2]
    got = torch.cat([b["input_ids"] for b in batches])
    for row, i in enumerate(loader.holdout_index):
        ids = examples[i][0]
        assert got[row, : len(ids)].tolist() == ids
    again = torch.cat([b["input_ids"] for b in PretrainLoader(dataset, global_batch_size=4, seed=9).holdout(4)])
    assert torch.equal(got, again)
