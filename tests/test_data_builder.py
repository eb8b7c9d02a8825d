"""The ExampleBuilder against the official rules (docs/faithfulness.md §2.1)."""

import math
import random

import pytest

from electra.data.builder import Example, ExampleBuilder, serialize


class ScriptedRandom(random.Random):
    """A Random whose `random()` returns scripted values (then 0.99), to drive each rule by hand."""

    def __init__(self, values):
        super().__init__(0)
        self.values = list(values)
        self.calls = 0

    def random(self):
        self.calls += 1
        return self.values.pop(0) if self.values else 0.99


def reference_examples(docs, max_length, rng):
    """A line-by-line transcription of the official add_line / _create_example with an explicit `rng`."""
    sentences, length, target = [], 0, max_length
    out = []

    def create():
        nonlocal sentences, length, target
        first_target = 100000 if rng.random() < 0.1 else (target - 3) // 2
        a, b = [], []
        for s in sentences:
            if (
                len(a) == 0
                or len(a) + len(s) < first_target
                or (len(b) == 0 and len(a) < first_target and rng.random() < 0.5)
            ):
                a += s
            else:
                b += s
        a = a[: max_length - 2]
        b = b[: max(0, max_length - len(a) - 3)]
        sentences, length = [], 0
        target = rng.randint(5, max_length) if rng.random() < 0.05 else max_length
        out.append((a, b))

    for doc in docs:
        for line in [*doc, None]:  # None: the blank line after the document
            if line is None and length != 0:
                create()
                continue
            sentences.append(line or [])
            length += len(line or [])
            if length >= target:
                create()
    return out


def build(docs, max_length, rng):
    builder = ExampleBuilder(max_length, rng)
    out = []
    for doc in docs:
        for ids in doc:
            if ex := builder.add_line(ids):
                out.append((ex.a, ex.b))
        if ex := builder.end_document():
            out.append((ex.a, ex.b))
    return out


def random_docs(rng, n_docs, max_sentence=40):
    docs = []
    for _ in range(n_docs):
        doc = []
        for _ in range(rng.randint(1, 30)):
            doc.append([rng.randrange(1000, 2000) for _ in range(rng.randint(0, max_sentence))])
        docs.append(doc)
    return docs


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("max_length", [5, 16, 128])
def test_identical_to_official_transcription(seed, max_length):
    docs = random_docs(random.Random(100 + seed), 60, max_sentence=3 * max_length // 4)
    assert build(docs, max_length, random.Random(seed)) == reference_examples(docs, max_length, random.Random(seed))


def test_first_segment_target_and_short_circuit_draws():
    # L=128: target (128-3)//2 = 62. Sentences of 20: A takes 20, 40, 60 (60 < 62); the 4th would reach 80:
    # B is empty and A (60) < 62, so one 0.5 draw decides; scripted 0.7 -> B.
    rng = ScriptedRandom([0.5, 0.7])  # 0.5: not single-segment; 0.7: overflow draw says no
    builder = ExampleBuilder(128, rng)
    out = [builder.add_line([i] * 20) for i in range(7)]  # 140 >= 128 at the 7th sentence
    ex = out[-1]
    assert out[:-1] == [None] * 6
    assert ex.a == [0] * 20 + [1] * 20 + [2] * 20
    # once B is non-empty no further 0.5 draw happens, but a sentence that fits under the target still goes to A:
    # here none fits (60 + 20 >= 62), so the rest goes to B, truncated to 128 - 60 - 3 = 65 tokens
    assert ex.b == ([3] * 20 + [4] * 20 + [5] * 20 + [6] * 20)[:65]
    # draws: single-segment, one overflow draw, then the next-target draw
    assert rng.calls == 3


def test_overflow_goes_to_a_with_the_half_draw():
    rng = ScriptedRandom([0.5, 0.2])  # 0.2 < 0.5: the overflowing sentence joins A
    builder = ExampleBuilder(128, rng)
    for i in range(6):
        assert builder.add_line([i] * 20) is None
    ex = builder.add_line([6] * 20)
    assert ex.a == sum(([i] * 20 for i in range(4)), [])  # 80 tokens: A went over its target of 62
    # A is now >= target, so no more draws: the rest goes to B
    assert ex.b == ([4] * 20 + [5] * 20 + [6] * 20)[: 128 - 80 - 3]
    assert rng.calls == 3


def test_single_segment_puts_everything_in_a_truncated_to_l_minus_2():
    rng = ScriptedRandom([0.05])  # < 0.1: first-segment target 100000
    builder = ExampleBuilder(16, rng)
    assert builder.add_line(list(range(10))) is None
    ex = builder.add_line(list(range(10, 20)))
    assert ex == Example(a=list(range(14)), b=[])  # 20 tokens, truncated to L-2 = 14, tokens 14..19 dropped
    assert rng.calls == 2  # no 0.5 draw: every sentence fits under 100000


def test_truncation_of_a_then_b_and_leftovers_dropped():
    rng = ScriptedRandom([0.5])
    builder = ExampleBuilder(16, rng)  # first target (16-3)//2 = 6
    ex = builder.add_line(list(range(30)))  # one sentence longer than L: all in A (A was empty)
    assert ex == Example(a=list(range(14)), b=[])
    # the next example starts empty: nothing is carried over
    rng.values = [0.5]
    ex = builder.add_line([100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111])
    assert ex is None or ex.a[0] == 100
    builder2 = ExampleBuilder(16, ScriptedRandom([0.5, 0.9]))  # overflow draw 0.9 -> B
    builder2.add_line([1, 2, 3, 4, 5])
    ex = builder2.add_line(list(range(50, 70)))
    assert ex.a == [1, 2, 3, 4, 5]
    assert ex.b == list(range(50, 58))  # B truncated to 16 - 5 - 3 = 8


def test_blank_line_ends_the_document_and_examples_never_span_documents():
    builder = ExampleBuilder(128, random.Random(0))
    assert builder.add_line([1, 2, 3]) is None
    ex = builder.end_document()
    assert ex.a + ex.b == [1, 2, 3]
    assert builder.end_document() is None  # nothing pending: a second blank line emits nothing
    assert builder.add_line([4]) is None
    assert builder.end_document().a == [4]


def test_target_reached_with_greater_or_equal():
    builder = ExampleBuilder(10, random.Random(0))
    assert builder.add_line([1] * 9) is None
    assert builder.add_line([2]) is not None  # 10 >= 10


def within(share, p, n, sigmas=5.0):
    return abs(share - p) <= sigmas * math.sqrt(p * (1 - p) / n)


def run_long_document(seed, n_sentences=300_000, max_length=128):
    """One long document of 3-token sentences; returns the examples and the target drawn after each."""
    builder = ExampleBuilder(max_length, random.Random(seed))
    sentence = [7, 7, 7]
    examples, targets = [], []
    for _ in range(n_sentences):
        if ex := builder.add_line(sentence):
            examples.append(ex)
            targets.append(builder.target_length)
    return examples, targets


def test_single_segment_share_is_ten_percent():
    # with 3-token sentences and no document ends, B is empty exactly for the single-segment examples
    examples, targets = run_long_document(seed=1)
    n = len(examples)
    assert n > 6000
    assert within(sum(not ex.b for ex in examples) / n, 0.1, n)
    # two segments at full target: A takes sentences while len(A) + 3 < 62, i.e. up to 60 tokens; the sentence that
    # would overflow joins A with probability 0.5 (A = 63), else B starts
    a_lengths = [len(ex.a) for ex, t in zip(examples[1:], targets, strict=False) if ex.b and t == 128]
    assert set(a_lengths) == {60, 63}
    assert within(a_lengths.count(63) / len(a_lengths), 0.5, len(a_lengths))


def test_random_length_share_is_five_percent_and_uniform_in_5_to_l():
    examples, targets = run_long_document(seed=2)
    n = len(targets)
    random_targets = [t for t in targets if t != 128]
    # randint(5, 128) itself returns 128 with probability 1/124
    assert within(len(random_targets) / n, 0.05 * 123 / 124, n)
    assert min(random_targets) >= 5 and max(random_targets) <= 127
    low = sum(t <= 66 for t in random_targets) / len(random_targets)  # 62 of the 123 values below 128
    assert within(low, 62 / 123, len(random_targets))
    # an example built towards target t holds t..t+2 content tokens (3-token sentences)
    for ex, t in zip(examples[1:], targets[:-1], strict=True):
        assert t <= len(ex.a) + len(ex.b) + 3 and len(ex.a) + len(ex.b) <= min(t + 2, 126)


def test_serialize_layout_and_segment_length():
    ids, a_len = serialize(Example([5, 6], [7]), cls_id=101, sep_id=102)
    assert ids == [101, 5, 6, 102, 7, 102] and a_len == 4
    ids, a_len = serialize(Example([5, 6], []), cls_id=101, sep_id=102)
    assert ids == [101, 5, 6, 102] and a_len == 4
