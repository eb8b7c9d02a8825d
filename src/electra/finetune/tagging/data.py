"""Tagging data: CoNLL-style files (or `hf:<dataset id>`), the label set, and word-piece features with each tag on
its word's first piece, token type 1 everywhere (docs/tagging.md: the format and how sentences are cut)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from electra.errors import ElectraError
from electra.finetune.features import pad

if TYPE_CHECKING:
    from electra.tokenizer import WordPiece

IGNORE = -100  # label of positions without a loss: [CLS], [SEP], non-first word pieces, padding
TOKEN_TYPE = 1  # google-research/electra tagging_tasks.py: segment_ids = [1] * len(input_ids)
HF_PREFIX = "hf:"
DOCSTART = "-DOCSTART-"


@dataclass
class Sentence:
    words: list[str]
    tags: list[str] | None  # None: an unlabelled (test) sentence
    where: list[str]  # "file:line" of each word, for error messages


@dataclass
class TaggingSplit:
    source: str  # the path or hf:NAME@SPLIT
    sentences: list[Sentence]

    @property
    def labelled(self) -> bool:
        return all(s.tags is not None for s in self.sentences)


def _resolve(column: int, n: int) -> int | None:
    i = column if column >= 0 else n + column
    return i if 0 <= i < n else None


def read_conll(path: str | Path, token_column: int = 0, tag_column: int = -1, tags: str = "required") -> TaggingSplit:
    """Sentences of a CoNLL-style file. `tags`: "required" (train/dev), "optional" (test: a file whose lines
    have no tag column, i.e. one column only when the tag column is the last, is read as unlabelled)."""
    path = Path(path)
    if not path.is_file():
        raise ElectraError(f"tagging file {path} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ElectraError(f"tagging file {path} is not UTF-8 text ({err})") from None
    sentences: list[Sentence] = []
    words: list[str] = []
    sent_tags: list[str] = []
    where: list[str] = []
    labelled: bool | None = None if tags == "optional" else True
    columns: tuple[int, int] | None = None  # (columns, line) of the first token line: every other has as many

    def close() -> None:
        if words:
            sentences.append(Sentence(list(words), list(sent_tags) if labelled else None, list(where)))
            words.clear(), sent_tags.clear(), where.clear()

    for number, line in enumerate(lines, 1):
        cols = line.split()
        if not cols:
            close()
            continue
        tok_i = _resolve(token_column, len(cols))
        if cols[0] == DOCSTART or (tok_i is not None and cols[tok_i] == DOCSTART):
            continue
        tag_i = _resolve(tag_column, len(cols))
        has_tag = tag_i is not None and tag_i != tok_i
        if labelled is None:  # the first token line of an optional-tag file decides
            labelled = has_tag
        if tok_i is None or (labelled and not has_tag):
            found = " ".join(cols)
            want = f"the token in column {token_column}" + (f" and the tag in column {tag_column}" if labelled else "")
            if tags == "optional" and labelled:
                want += " (earlier lines have tags)"
            raise ElectraError(f"{path}:{number}: {len(cols)} column(s) found ({found!r}); expected {want}")
        if columns is None:
            columns = (len(cols), number)
        elif len(cols) != columns[0]:  # a word with a space in it, or a stray column: its tag would be misread
            raise ElectraError(
                f"{path}:{number}: {len(cols)} columns ({' '.join(cols)!r}), but line {columns[1]} has {columns[0]}; "
                "every token line needs the same columns (words without spaces)"
            )
        words.append(cols[tok_i])
        if labelled:
            sent_tags.append(cols[tag_i])
        where.append(f"{path}:{number}")
    close()
    if not sentences:
        raise ElectraError(f"tagging file {path} has no sentences (it is empty or holds only blank/-DOCSTART- lines)")
    return TaggingSplit(str(path), sentences)


def read_hf(source: str, role: str) -> TaggingSplit:
    """Sentences of a hub dataset with a `tokens` column and a `<x>_tags` column (ClassLabel names or strings)."""
    from electra import hub

    ds, spec = hub.load_dataset(source, role, "dataset")
    name, split, column = spec.name, spec.split, spec.column
    where = f"{HF_PREFIX}{name}@{split}"
    cols = list(ds.column_names)
    candidates = [c for c in cols if c.endswith("_tags")]
    if column is None and len(candidates) == 1:
        column = candidates[0]
    if "tokens" not in cols or column is None or column not in cols:
        raise ElectraError(
            f"{where}: needs a 'tokens' column and one tags column (found {', '.join(cols)}); "
            f"with several *_tags columns name one as {HF_PREFIX}{name}@{split}#<column>"
        )
    feature = getattr(ds.features[column], "feature", None)
    names = getattr(feature, "names", None)  # ClassLabel: ids -> names
    sentences = []
    for row, example in enumerate(ds):
        words = [str(w) for w in example["tokens"]]
        if not words:
            continue
        tags = [names[t] if names is not None else str(t) for t in example[column]]
        if len(tags) != len(words):
            raise ElectraError(f"{where} row {row}: {len(words)} tokens but {len(tags)} tags")
        sentences.append(Sentence(words, tags, [f"{where} row {row}"] * len(words)))
    if not sentences:
        raise ElectraError(f"{where} has no sentences")
    return TaggingSplit(where, sentences)


def load_split(source: str, role: str, token_column: int = 0, tag_column: int = -1) -> TaggingSplit:
    """`role` is train, dev or test (a test file may lack tags). Only `hf:` sources reach the hub."""
    if str(source).startswith(HF_PREFIX):
        return read_hf(str(source), role)
    return read_conll(source, token_column, tag_column, "optional" if role == "test" else "required")


def subsample(split: TaggingSplit, n: int | None) -> TaggingSplit:
    """The same `n` sentences for every seed (seed 0 picks them; their order kept), as GLUE's max_train_examples."""
    if n is None or n >= len(split.sentences):
        return split
    keep = sorted(random.Random(0).sample(range(len(split.sentences)), n))
    return TaggingSplit(split.source, [split.sentences[i] for i in keep])


def label_list(train: TaggingSplit) -> list[str]:
    """The tags of the train set, sorted (stable across runs). The official code sorts the tags of train, dev and
    test together (tagging_tasks.py, `_get_label_mapping`); here a tag must be seen in training to be learnt."""
    return sorted({t for s in train.sentences for t in s.tags or ()})


def check_tags(split: TaggingSplit, labels: list[str]) -> None:
    """A dev/test tag the train set never has cannot be predicted: refuse it, naming where it is."""
    known = set(labels)
    for s in split.sentences:
        for tag, where in zip(s.tags or (), s.where, strict=False):
            if tag not in known:
                raise ElectraError(f"{where}: tag {tag!r} does not occur in the train set (its tags: {_some(labels)})")


def _some(labels: list[str], k: int = 12) -> str:
    return ", ".join(labels[:k]) + (f", ... ({len(labels)} in all)" if len(labels) > k else "")


_SPAN_TAG = re.compile(r"^([BIES])-(.+)$")


def span_scheme(labels: list[str]) -> str | None:
    """ "BIOES" when every tag is O or [BIES]-type with some S-/E-, "BIO" when only B-/I-/O, else None."""
    prefixes = set()
    for tag in labels:
        if tag == "O":
            continue
        m = _SPAN_TAG.match(tag)
        if m is None:
            return None
        prefixes.add(m.group(1))
    if not prefixes:
        return None
    return "BIO" if prefixes <= {"B", "I"} else "BIOES"


@dataclass
class TaggingFeatures:
    input_ids: list[list[int]] = field(default_factory=list)
    labels: list[list[int]] = field(default_factory=list)  # per position: label id on first pieces, else IGNORE
    word_positions: list[list[int]] = field(default_factory=list)  # per word: its first piece, -1 if truncated

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def truncated_words(self) -> int:
        return sum(p < 0 for row in self.word_positions for p in row)


def featurize(
    split: TaggingSplit, tokenizer: WordPiece, label2id: dict[str, int] | None, max_length: int
) -> TaggingFeatures:
    """`[CLS] pieces [SEP]` per sentence, labels on first pieces (tagging_tasks.py `featurize`)."""
    if max_length < 3:
        raise ElectraError(f"max_length must be at least 3 for tagging ([CLS] word [SEP]), got {max_length}")
    out = TaggingFeatures()
    for s in split.sentences:
        pieces = tokenizer.encode_batch(s.words)
        ids, labels, positions = [tokenizer.cls_id], [IGNORE], []
        for i, word_ids in enumerate(pieces):
            word_ids = word_ids or [tokenizer.unk_id]  # a word with no piece (only control characters)
            if len(ids) + len(word_ids) + 1 > max_length:  # +1: [SEP]
                positions.extend([-1] * (len(pieces) - i))
                break
            positions.append(len(ids))
            ids.extend(word_ids)
            first = label2id[s.tags[i]] if label2id is not None and s.tags is not None else IGNORE
            labels.extend([first] + [IGNORE] * (len(word_ids) - 1))
        ids.append(tokenizer.sep_id)
        labels.append(IGNORE)
        out.input_ids.append(ids)
        out.labels.append(labels)
        out.word_positions.append(positions)
    return out


def collate(features: TaggingFeatures, rows: Iterable[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors for `rows`: input_ids, attention_mask, token_type_ids (TOKEN_TYPE), labels."""
    rows = list(rows)
    ids = [features.input_ids[r] for r in rows]
    mask = pad([[1] * len(q) for q in ids], 0)
    labels = pad([features.labels[r] for r in rows], IGNORE)
    return {
        "input_ids": pad(ids, pad_id),
        "attention_mask": mask,
        "token_type_ids": mask * TOKEN_TYPE,
        "labels": labels,
    }
