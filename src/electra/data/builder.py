"""The official `ExampleBuilder` (`google-research/electra build_pretraining_dataset.py:34-114`): already-tokenized
lines in, examples out, with the official order of draws from its own `random.Random`."""

from __future__ import annotations

import random
from dataclasses import dataclass

SINGLE_SEGMENT_PROB = 0.1  # chance that the whole example is one segment (classification-like)
RANDOM_LENGTH_PROB = 0.05  # chance that the next example aims at a random length in [5, max_length]
MIN_MAX_LENGTH = 5


@dataclass(frozen=True)
class Example:
    """`[CLS] a [SEP]` plus `b [SEP]` when `b` is non-empty; ids exclude the special tokens."""

    a: list[int]
    b: list[int]


def next_target_length(rng: random.Random, max_length: int) -> int:
    """Step 5 of creating an example: usually `max_length`, with probability 0.05 `randint(5, max_length)`."""
    if rng.random() < RANDOM_LENGTH_PROB:
        return rng.randint(MIN_MAX_LENGTH, max_length)
    return max_length


class ExampleBuilder:
    """Accumulates tokenized sentences of a document and cuts them into examples exactly as the official code."""

    def __init__(self, max_length: int, rng: random.Random, target_length: int | None = None):
        self.max_length = max_length
        self.rng = rng
        self.target_length = max_length if target_length is None else target_length
        self.sentences: list[list[int]] = []
        self.length = 0

    def add_line(self, ids: list[int] | None) -> Example | None:
        """Add one tokenized line; `None` stands for an empty line (a document boundary)."""
        if ids is None and self.length != 0:
            return self.create_example()
        ids = ids or []  # an empty line with nothing pending appends an empty sentence, as the official code does
        self.sentences.append(ids)
        self.length += len(ids)
        if self.length >= self.target_length:
            return self.create_example()
        return None

    def end_document(self) -> Example | None:
        """A blank line: emit whatever is pending (the official writer does this at every blank line and EOF)."""
        return self.add_line(None)

    def create_example(self) -> Example:
        rng = self.rng
        # -3 for [CLS] and two [SEP]; 100000 means "everything in A"
        first_target = 100000 if rng.random() < SINGLE_SEGMENT_PROB else (self.target_length - 3) // 2
        a: list[int] = []
        b: list[int] = []
        for sentence in self.sentences:
            # to A if A is empty, if it fits under the target, or (only while B is empty and A is below target)
            # with probability 0.5; the `or`/`and` short-circuit decides whether the 0.5 draw happens at all
            if (
                len(a) == 0
                or len(a) + len(sentence) < first_target
                or (len(b) == 0 and len(a) < first_target and rng.random() < 0.5)
            ):
                a += sentence
            else:
                b += sentence
        a = a[: self.max_length - 2]  # truncation uses max_length, not target_length; leftovers are dropped
        b = b[: max(0, self.max_length - len(a) - 3)]
        self.sentences = []
        self.length = 0
        self.target_length = next_target_length(rng, self.max_length)
        return Example(a, b)


def serialize(example: Example, cls_id: int, sep_id: int) -> tuple[list[int], int]:
    """`([CLS] a [SEP] b [SEP], segment_a_length)` (B and its [SEP] omitted when empty); `segment_a_length` counts
    `[CLS] a [SEP]`, the positions with token type 0."""
    ids = [cls_id, *example.a, sep_id]
    a_len = len(ids)
    if example.b:
        ids += [*example.b, sep_id]
    return ids, a_len
