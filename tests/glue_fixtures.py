"""Small GLUE-format data for tests, in the exact layout (and with the quirks) of the original distribution.

Labels follow simple word cues so that a model can learn them: single-sentence tasks are positive when the
sentence contains "good"; pair tasks are positive when the second text contains "yes"; MNLI uses yes/maybe/no;
STS-B's score is the number of times "same" occurs in the second sentence.
"""

from __future__ import annotations

import random
from pathlib import Path

WORDS = [
    "the",
    "cat",
    "dog",
    "bird",
    "sat",
    "ran",
    "on",
    "a",
    "mat",
    "log",
    "tree",
    "red",
    "blue",
    "green",
    "big",
    "small",
    "quick",
    "slow",
    "house",
    "car",
    "road",
    "what",
    "is",
    "where",
    "who",
    "it",
]
CUES = ("good", "bad", "yes", "no", "maybe", "same")
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *CUES, "?", "."]


def write_vocab(path: Path) -> Path:
    path.write_text("\n".join(VOCAB) + "\n")
    return path


def _sentence(rng: random.Random, n: int | None = None) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n or rng.randint(3, 8)))


def _write(path: Path, header: list[str] | None, rows: list[list[str]], bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(r) for r in rows]
    text = "\n".join(lines) + "\n"
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")


def write_glue(root: Path, n_train: int = 48, n_dev: int = 16, n_test: int = 12, seed: int = 0) -> Path:
    """Every GLUE task (CoLA ... WNLI, MNLI with both dev and test sets, AX) under `root`."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)

    def single(n):
        out = []
        for _ in range(n):
            pos = rng.random() < 0.5
            words = _sentence(rng).split()
            words.insert(rng.randrange(len(words) + 1), "good" if pos else "bad")
            out.append((" ".join(words), int(pos)))
        return out

    def pair(n, cues=("no", "yes")):
        out = []
        for _ in range(n):
            label = rng.randrange(len(cues))
            out.append((_sentence(rng), f"{_sentence(rng, 3)} {cues[label]} {_sentence(rng, 2)}", label))
        return out

    # CoLA: train/dev without header (source, label, original label, sentence); test with `index sentence`
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [["gj04", str(y), "" if y else "*", s] for s, y in single(n)]
        _write(root / "CoLA" / f"{split}.tsv", None, rows)
    _write(root / "CoLA/test.tsv", ["index", "sentence"], [[str(i), s] for i, (s, _) in enumerate(single(n_test))])

    # SST-2
    for split, n in (("train", n_train), ("dev", n_dev)):
        _write(root / "SST-2" / f"{split}.tsv", ["sentence", "label"], [[s + " ", str(y)] for s, y in single(n)])
    _write(root / "SST-2/test.tsv", ["index", "sentence"], [[str(i), s] for i, (s, _) in enumerate(single(n_test))])

    # MRPC: the header starts with a byte-order mark
    mrpc = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [[str(y), str(1000 + i), str(2000 + i), a, b] for i, (a, b, y) in enumerate(pair(n))]
        _write(root / "MRPC" / f"{split}.tsv", mrpc, rows, bom=True)
    rows = [[str(i), str(1000 + i), str(2000 + i), a, b] for i, (a, b, _) in enumerate(pair(n_test))]
    _write(root / "MRPC/test.tsv", ["index", *mrpc[1:]], rows)

    # STS-B: 10 columns, float scores
    sts = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"]
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = []
        for i in range(n):
            k = rng.randint(0, 5)
            b = " ".join([_sentence(rng, 2)] + ["same"] * k)
            rows.append(
                [
                    str(i),
                    "main-captions",
                    "MSRvid",
                    "2012test",
                    f"{i:04d}",
                    "none",
                    "none",
                    _sentence(rng),
                    b,
                    f"{k:.3f}",
                ]
            )
        _write(root / "STS-B" / f"{split}.tsv", [*sts, "score"], rows)
    rows = [
        [
            str(i),
            "main-news",
            "MSRvid",
            "2012test",
            f"{i:04d}",
            "none",
            "none",
            _sentence(rng),
            _sentence(rng) + " same",
        ]
        for i in range(n_test)
    ]
    _write(root / "STS-B/test.tsv", sts, rows)

    # QQP: train has a malformed row (fewer fields), as the original data does
    qqp = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [[str(i), str(2 * i), str(2 * i + 1), a + " ?", b + " ?", str(y)] for i, (a, b, y) in enumerate(pair(n))]
        if split == "train":
            rows.insert(3, ["999", "1998", "1999", "what is a broken row"])
        _write(root / "QQP" / f"{split}.tsv", qqp, rows)
    _write(
        root / "QQP/test.tsv",
        ["id", "question1", "question2"],
        [[str(i), a + " ?", b + " ?"] for i, (a, b, _) in enumerate(pair(n_test))],
    )

    # MNLI: train (12 columns), dev matched / mismatched (16), test matched / mismatched (10)
    base = [
        "index",
        "promptID",
        "pairID",
        "genre",
        "sentence1_binary_parse",
        "sentence2_binary_parse",
        "sentence1_parse",
        "sentence2_parse",
        "sentence1",
        "sentence2",
    ]
    cues = ("no", "yes", "maybe")  # contradiction, entailment, neutral
    names = ("contradiction", "entailment", "neutral")

    def mnli_rows(n, n_labels):
        rows = []
        for i, (a, b, y) in enumerate(pair(n, cues)):
            rows.append(
                [str(i), str(i), f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a, b]
                + [names[y]] * n_labels
            )
        return rows

    _write(root / "MNLI/train.tsv", [*base, "label1", "gold_label"], mnli_rows(n_train, 2))
    dev_head = [*base, "label1", "label2", "label3", "label4", "label5", "gold_label"]
    _write(root / "MNLI/dev_matched.tsv", dev_head, mnli_rows(n_dev, 6))
    _write(root / "MNLI/dev_mismatched.tsv", dev_head, mnli_rows(n_dev + 2, 6))
    _write(root / "MNLI/test_matched.tsv", base, mnli_rows(n_test, 0))
    _write(root / "MNLI/test_mismatched.tsv", base, mnli_rows(n_test + 1, 0))
    _write(
        root / "diagnostic/diagnostic.tsv",
        ["index", "sentence1", "sentence2"],
        [[str(i), a, b] for i, (a, b, _) in enumerate(pair(n_test + 2, cues))],
    )

    # QNLI, RTE: entailment / not_entailment; WNLI: 0 / 1
    for directory, cols, labels in (
        ("QNLI", ["index", "question", "sentence"], ("not_entailment", "entailment")),
        ("RTE", ["index", "sentence1", "sentence2"], ("not_entailment", "entailment")),
        ("WNLI", ["index", "sentence1", "sentence2"], ("0", "1")),
    ):
        for split, n in (("train", n_train), ("dev", n_dev)):
            rows = [[str(i), a, b, labels[y]] for i, (a, b, y) in enumerate(pair(n))]
            _write(root / directory / f"{split}.tsv", [*cols, "label"], rows)
        _write(root / directory / "test.tsv", cols, [[str(i), a, b] for i, (a, b, _) in enumerate(pair(n_test))])
    return root


# expected data-row counts per task and split for write_glue's defaults
def expected_rows(n_train: int = 48, n_dev: int = 16, n_test: int = 12) -> dict[tuple[str, str], int]:
    out = {}
    for t in ("cola", "sst2", "mrpc", "stsb", "qqp", "qnli", "rte", "wnli", "mnli"):
        out[t, "train"], out[t, "dev"], out[t, "test"] = n_train, n_dev, n_test
    out["mnli", "dev_mm"], out["mnli", "test_mm"], out["mnli", "ax"] = n_dev + 2, n_test + 1, n_test + 2
    return out


# a micro ELECTRA discriminator over VOCAB: what the finetuning tests finetune
MICRO = dict(
    vocab_size=len(VOCAB),
    embedding_size=16,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
)


def write_micro_model(root: Path) -> Path:
    """root/vocab.txt and root/micro: a MICRO discriminator (seed 0) saved in HF format with its tokenizer."""
    import torch

    from electra.config import ModelConfig
    from electra.hf import save_hf
    from electra.model import Discriminator, init_weights
    from electra.tokenizer import load_tokenizer

    tok = load_tokenizer(write_vocab(root / "vocab.txt"))
    torch.manual_seed(0)
    disc = Discriminator(ModelConfig(**MICRO))
    init_weights(disc)
    return save_hf(disc, root / "micro", tokenizer=tok)
