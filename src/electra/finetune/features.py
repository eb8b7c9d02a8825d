"""Reading GLUE splits (GLUE distribution TSVs or the `datasets` hub copy) and turning them into model inputs.

Quirks of the original files (docs/faithfulness.md §6.3): CoLA train/dev have no header; the MRPC header starts with a
UTF-8 byte-order mark; QQP contains malformed rows (skipped and counted, as the official code does); MNLI has
dev_matched/dev_mismatched/test_matched/test_mismatched and AX lives in `diagnostic/`; STS-B scores are floats.
Everywhere else a malformed row or an unknown label is an error naming the file and line.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from electra.errors import ElectraError
from electra.finetune.tasks import HUB_DATASET, Example, Split, SplitData, Task

if TYPE_CHECKING:
    from electra.tokenizer import WordPiece

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # some GLUE sentences are long; the default limit is 128 KiB


def find_split_file(task: Task, split: Split, glue_dir: str | Path) -> Path | None:
    for rel in split.files:
        path = Path(glue_dir) / rel
        if path.is_file():
            return path
    return None


def read_tsv_split(task: Task, split: Split, path: str | Path) -> SplitData:
    """Read one split from a GLUE-format TSV file (UTF-8; a header line, then at least one row)."""
    path = Path(path)
    try:
        data = _read_tsv(task, split, path)
    except UnicodeDecodeError as err:
        raise ElectraError(
            f"{path} is not UTF-8 text (byte {err.object[err.start]:#x} at offset {err.start}); "
            "the GLUE files are UTF-8"
        ) from None
    if not data.examples:
        raise ElectraError(f"{path} has no {task.display} rows after its header")
    return data


def _read_tsv(task: Task, split: Split, path: Path) -> SplitData:
    with open(path, encoding="utf-8-sig", newline="") as f:  # utf-8-sig drops MRPC's byte-order mark
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if task.no_header and split.labelled:
            header = list(task.no_header)
        else:
            header = next(reader, None)
            if header is None:
                raise ElectraError(f"{path} is empty; expected a header line and {task.display} rows")
        want = [task.text_a] + ([task.text_b] if task.text_b else [])
        want += [task.label_column] if split.labelled else [split.index_column]
        missing = [c for c in want if c not in header]
        if missing:
            raise ElectraError(
                f"{path}: unexpected column layout for {task.display} {split.name}: no column "
                f"{', '.join(repr(c) for c in missing)} in header {header}"
            )
        col = {name: header.index(name) for name in want}
        examples: list[Example] = []
        skipped = 0
        for row in reader:
            line = reader.line_num
            if len(row) != len(header):
                if not row or row == [""]:
                    continue  # trailing blank line
                if task.skip_malformed:
                    skipped += 1
                    continue
                raise ElectraError(
                    f"{path}:{line}: malformed row with {len(row)} tab-separated fields, expected {len(header)}"
                )
            label = _parse_label(task, row[col[task.label_column]], f"{path}:{line}") if split.labelled else None
            index = row[col[split.index_column]] if not split.labelled else str(len(examples))
            examples.append(
                Example(index, row[col[task.text_a]], row[col[task.text_b]] if task.text_b else None, label)
            )
    if skipped:
        print(f"{path}: skipped {skipped} malformed row(s), as in the original {task.display} data", file=sys.stderr)
    return SplitData(task, split, str(path), examples, skipped)


def _parse_label(task: Task, value: str, where: str) -> int | float:
    if task.labels is None:
        try:
            return float(value)
        except ValueError:
            raise ElectraError(f"{where}: {task.display} score {value!r} is not a number") from None
    if value not in task.labels:
        raise ElectraError(f"{where}: label {value!r} is not one of {task.display}'s labels {', '.join(task.labels)}")
    return task.labels.index(value)


# ---------------------------------------------------------------------------------------------- hub


def read_hub_split(task: Task, split: Split, dataset: str = HUB_DATASET) -> SplitData | None:
    """One split from the `datasets` copy of GLUE (`nyu-mll/glue`); None when the hub has no such split."""
    import datasets

    config, hub_split = split.hub
    try:
        ds = datasets.load_dataset(dataset, config, split=hub_split)
    except Exception as err:  # unreachable hub, missing split, ...
        print(
            f"{task.display} {split.name}: not loaded from {dataset}/{config} ({type(err).__name__}: {err})",
            file=sys.stderr,
        )
        return None
    label_feature = ds.features.get("label")
    names = getattr(label_feature, "names", None)
    examples = []
    text_b = task.hub_text_b
    for i, row in enumerate(ds):
        label = None
        if split.labelled:
            value = row["label"]
            if task.labels is None:
                label = float(value)
            else:
                # the hub stores class ids whose names may differ from the file strings (CoLA: "acceptable" = "1")
                name = names[value] if names and 0 <= value < len(names) and names[value] in task.labels else str(value)
                label = _parse_label(task, name, f"{dataset}/{config}/{hub_split} row {i}")
        index = str(row.get("idx", i))
        examples.append(Example(index, row[task.hub_text_a], row[text_b] if text_b else None, label))
    return SplitData(task, split, f"{dataset}/{config}/{hub_split}", examples)


def load_split(task: Task, split_name: str, glue_dir: str | Path | None) -> SplitData | None:
    """A split from `glue_dir` (GLUE layout) or, when glue_dir is None, from the hub; None when it is absent."""
    split = task.split(split_name)
    if task.files is not None:  # your own data (electra.finetune.own): the split names its file or hub id
        from electra.finetune.own import read_split

        return read_split(task, split)
    if glue_dir is None:
        return read_hub_split(task, split)
    path = find_split_file(task, split, glue_dir)
    if path is None:
        return None
    return read_tsv_split(task, split, path)


def double_unordered(examples: Sequence[Example]) -> list[Example]:
    """The examples followed by their (b, a) swapped copies (official MRPC / STS-B train augmentation)."""
    swapped = [Example(f"{e.index}-swap", e.text_b or "", e.text_a, e.label) for e in examples]
    return list(examples) + swapped


# ---------------------------------------------------------------------------------------------- featurization


@dataclass
class Features:
    input_ids: list[list[int]]  # [CLS] a [SEP] (b [SEP]); unpadded, padded per batch by `collate`
    token_type_ids: list[list[int]]
    labels: np.ndarray  # int64 class ids, float32 targets (/ regression_max), multi-hot rows; -1 / nan for test
    index: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)


def truncate_pair(a: list[int], b: list[int], max_tokens: int) -> tuple[list[int], list[int]]:
    """BERT truncation: pop from the end of the currently longer sequence (b on a tie) until both fit."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()
    return a, b


def encode_texts(
    tokenizer: WordPiece, texts_a: Sequence[str], texts_b: Sequence[str | None], max_length: int = 128
) -> tuple[list[list[int]], list[list[int]]]:
    """(input ids, segment ids) of `[CLS] a [SEP]`, or `[CLS] a [SEP] b [SEP]` where b is a non-empty text (the
    official `if example.text_b:`: an empty second text is one segment), truncated to `max_length` (pairs by
    popping from the longer text)."""
    if max_length < 4:
        raise ElectraError(f"max_length must be at least 4, got {max_length}")
    enc_a = tokenizer.encode_batch(list(texts_a))
    enc_b = tokenizer.encode_batch([b or "" for b in texts_b])
    ids, types = [], []
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    for a, b, text_b in zip(enc_a, enc_b, texts_b, strict=True):
        if not text_b:
            a = a[: max_length - 2]
            ids.append([cls, *a, sep])
            types.append([0] * (len(a) + 2))
        else:
            a, b = truncate_pair(a, b, max_length - 3)
            ids.append([cls, *a, sep, *b, sep])
            types.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
    return ids, types


def featurize(task: Task, examples: Sequence[Example], tokenizer: WordPiece, max_length: int = 128) -> Features:
    """Token ids for `[CLS] a [SEP] b [SEP]` with segment ids 0…0 1…1, truncated to `max_length`."""
    texts_b = [e.text_b for e in examples] if task.text_b else [None] * len(examples)
    ids, types = encode_texts(tokenizer, [e.text_a for e in examples], texts_b, max_length)
    if task.is_regression:
        scale = task.regression_max or 1.0
        labels = np.array([np.nan if e.label is None else e.label / scale for e in examples], np.float32)
    elif task.multilabel:  # multi-hot rows; test rows are all -1
        labels = np.zeros((len(examples), task.num_outputs), np.float32)
        for row, e in enumerate(examples):
            if e.label is None:
                labels[row] = -1.0
            else:
                labels[row, list(e.label)] = 1.0
    else:
        labels = np.array([-1 if e.label is None else e.label for e in examples], np.int64)
    return Features(ids, types, labels, [e.index for e in examples])


def pad(sequences: Sequence[Sequence[int]], fill: int) -> torch.Tensor:
    """(len(sequences), longest) int64 tensor of the sequences, right-padded with `fill` (used by every collate)."""
    out = torch.full((len(sequences), max(len(q) for q in sequences)), fill, dtype=torch.long)
    for r, q in enumerate(sequences):
        out[r, : len(q)] = torch.tensor(q, dtype=torch.long)
    return out


def collate(features: Features, rows: Sequence[int], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """A batch padded to its longest row (equivalent to padding to max_length: pads are masked out)."""
    ids = [features.input_ids[i] for i in rows]
    return dict(
        input_ids=pad(ids, pad_id),
        token_type_ids=pad([features.token_type_ids[i] for i in rows], 0),
        attention_mask=pad([[1] * len(q) for q in ids], 0),
        labels=torch.from_numpy(features.labels[list(rows)]),
    )
