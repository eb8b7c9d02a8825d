"""The pretraining loader: shuffled by seed, sharded over data-parallel ranks, exactly resumable on any number of
ranks; the held-out examples are never trained on (docs/data.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from electra.data.store import TOKENIZER, ExampleStore
from electra.errors import ElectraError
from electra.tokenizer import WordPiece, load_tokenizer

STATE_VERSION = 1


def holdout_indices(num_examples: int, num_holdout: int) -> np.ndarray:
    """K example indices spread evenly over [0, n): floor((2i+1)·n / 2K)."""
    i = np.arange(num_holdout, dtype=np.int64)
    return (2 * i + 1) * num_examples // (2 * num_holdout) if num_holdout else i


def count_ids(examples: list[np.ndarray], vocab_size: int) -> np.ndarray:
    """How often each id in [0, vocab_size) occurs in `examples` (arrays of token ids)."""
    ids = np.concatenate(examples).astype(np.int64) if examples else np.zeros(0, np.int64)
    return np.bincount(ids, minlength=vocab_size)[:vocab_size]


class PretrainLoader:
    """Infinite iterator of padded batches of input_ids / attention_mask / token_type_ids, [G / W, max_length]."""

    def __init__(
        self, data_dir: str | os.PathLike, global_batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1
    ):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ElectraError(f"rank {rank} is not in [0, world_size={world_size})")
        if global_batch_size < 1 or global_batch_size % world_size:
            raise ElectraError(
                f"global batch size {global_batch_size} must be a positive multiple of the world size {world_size}"
            )
        if seed < 0:
            raise ElectraError(f"loader seed must be >= 0, got {seed}")
        self.dir = Path(data_dir)
        self.store = ExampleStore(self.dir)
        self.meta: dict[str, Any] = self.store.meta
        self.max_length: int = self.meta["max_length"]
        self.num_examples: int = len(self.store)
        self.tokenizer: WordPiece = load_tokenizer(self.dir / TOKENIZER)
        if self.tokenizer.fingerprint() != self.meta["tokenizer_fingerprint"]:
            raise ElectraError(f"{self.dir / TOKENIZER} is not the tokenizer this dataset was built with")
        self.global_batch_size = global_batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.holdout_index = holdout_indices(self.num_examples, self.meta["num_holdout"])
        is_train = np.ones(self.num_examples, dtype=bool)
        is_train[self.holdout_index] = False
        self.train_index = np.flatnonzero(is_train)
        self.num_train_examples = len(self.train_index)
        self.batches_per_epoch = self.num_train_examples // global_batch_size
        if self.batches_per_epoch == 0:
            raise ElectraError(
                f"{self.dir} has {self.num_train_examples} training examples, fewer than one global batch "
                f"of {global_batch_size}"
            )
        self.epoch = 0
        self.batch = 0  # next global batch within the epoch
        self._permutation: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        if self._permutation is None or self._permutation[0] != epoch:
            self._permutation = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_train_examples))
        return self._permutation[1]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.batch >= self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        per_rank = self.global_batch_size // self.world_size
        start = self.batch * self.global_batch_size + self.rank * per_rank
        positions = self.permutation(self.epoch)[start : start + per_rank]
        self.batch += 1
        return self.collate(self.train_index[positions])

    def collate(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """Pad examples to max_length: `[CLS] A [SEP] B [SEP] 0 ...`, type 1 for B and its [SEP], 0 for pads."""
        shape = (len(indices), self.max_length)
        input_ids = np.zeros(shape, dtype=np.int64)
        attention_mask = np.zeros(shape, dtype=np.int64)
        token_type_ids = np.zeros(shape, dtype=np.int64)
        for row, i in enumerate(indices):
            tokens, a_len = self.store[int(i)]
            n = len(tokens)
            input_ids[row, :n] = tokens
            attention_mask[row, :n] = 1
            token_type_ids[row, a_len:n] = 1
        return {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention_mask),
            "token_type_ids": torch.from_numpy(token_type_ids),
        }

    def holdout(self, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        """The held-out examples in fixed order, in batches of at most `batch_size`; rank r of W gets r, r + W, ..."""
        if batch_size < 1:
            raise ElectraError(f"holdout batch size must be positive, got {batch_size}")
        index = self.holdout_index[rank::world_size]
        for start in range(0, len(index), batch_size):
            yield self.collate(index[start : start + batch_size])

    def train_examples(self, max_tokens: int) -> Iterator[np.ndarray]:
        """The training examples' token ids in stored order, up to the one that reaches `max_tokens` in all."""
        total = 0
        for i in self.train_index:
            if total >= max_tokens:
                return
            tokens = self.store[int(i)][0]
            total += len(tokens)
            yield tokens

    def token_counts(self, vocab_size: int, max_tokens: int = 50_000_000) -> np.ndarray:
        """How often each id occurs in the training examples (the first `max_tokens` of them, for a large corpus)."""
        return count_ids(list(self.train_examples(max_tokens)), vocab_size)

    def state_dict(self) -> dict[str, Any]:
        state = {"version": STATE_VERSION, "epoch": self.epoch, "batch": self.batch, "seed": self.seed}
        state |= {"global_batch_size": self.global_batch_size, "num_train_examples": self.num_train_examples}
        return state | {"data_key": self.meta["key"]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume exactly where `state` was taken: the next batch is the one that would have come next."""
        expected = {
            "version": STATE_VERSION,
            "seed": self.seed,
            "global_batch_size": self.global_batch_size,
            "num_train_examples": self.num_train_examples,
            "data_key": self.meta["key"],
        }
        for key, value in expected.items():
            if state.get(key) != value:
                raise ElectraError(
                    f"loader state does not fit this loader: {key} is {state.get(key)!r}, expected {value!r}"
                )
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
