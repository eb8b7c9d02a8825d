"""On-disk format of a prepared dataset (docs/data.md: meta.json written last, tokens.bin, offsets.bin,
segment_a.bin, tokenizer/), and reading it back memory-mapped."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from electra.errors import ElectraError
from electra.io import library_writes

FORMAT = "electra-pretraining-examples"
FORMAT_VERSION = 1
META = "meta.json"
TOKENS = "tokens.bin"
OFFSETS = "offsets.bin"
SEGMENT_A = "segment_a.bin"
TOKENIZER = "tokenizer"
DATA_FILES = (TOKENS, OFFSETS, SEGMENT_A)
OFFSET_DTYPE = np.int64
SEGMENT_A_DTYPE = np.uint16


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def load_dataset_meta(data_dir: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a complete prepared dataset; ElectraError if `data_dir` is not one."""
    data_dir = Path(data_dir)
    meta_file = data_dir / META
    if not meta_file.is_file():
        raise ElectraError(f"{data_dir} is not a prepared dataset (no {META}; run `electra prepare`)")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ElectraError(f"{meta_file} is not valid JSON ({err})") from None
    if meta.get("format") != FORMAT:
        raise ElectraError(f"{meta_file} does not describe an electra dataset")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ElectraError(
            f"{data_dir} has data format version {meta.get('format_version')}, this electra reads {FORMAT_VERSION}; "
            "prepare it again"
        )
    return meta


class ExampleStore:
    """Memory-mapped read access to a prepared dataset; nothing is loaded into RAM up front."""

    def __init__(self, data_dir: str | os.PathLike):
        self.dir = Path(data_dir)
        self.meta = load_dataset_meta(self.dir)
        n = self.meta["num_examples"]
        try:
            self.tokens = np.memmap(self.dir / TOKENS, dtype=self.meta["token_dtype"], mode="r")
            self.offsets = np.memmap(self.dir / OFFSETS, dtype=OFFSET_DTYPE, mode="r")
            self.segment_a = np.memmap(self.dir / SEGMENT_A, dtype=SEGMENT_A_DTYPE, mode="r")
        except (OSError, ValueError) as err:
            raise ElectraError(f"{self.dir}: cannot map the example files ({err})") from None
        if len(self.offsets) != n + 1 or len(self.segment_a) != n or len(self.tokens) != int(self.offsets[-1]):
            raise ElectraError(f"{self.dir}: example files do not match {META} (truncated or modified)")

    def __len__(self) -> int:
        return len(self.segment_a)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]], int(self.segment_a[i])


def read_examples(path: str | os.PathLike) -> Iterator[tuple[list[int], int]]:
    """Every stored example in order, as `(token_ids, segment_a_length)`: `[CLS] A [SEP] B [SEP]` without padding,
    and the length of `[CLS] A [SEP]` (the positions of token type 0)."""
    store = ExampleStore(path)
    block = 4096
    for start in range(0, len(store), block):
        stop = min(start + block, len(store))
        offsets = np.asarray(store.offsets[start : stop + 1])
        tokens = np.asarray(store.tokens[offsets[0] : offsets[-1]]).tolist()
        seg = np.asarray(store.segment_a[start:stop]).tolist()
        base = int(offsets[0])
        for j in range(stop - start):
            yield tokens[offsets[j] - base : offsets[j + 1] - base], seg[j]


class ExampleWriter:
    """Appends batches of serialized examples to the three data files of a directory (streaming)."""

    def __init__(self, directory: Path, dtype: np.dtype, max_length: int):
        self.dir = directory
        self.dtype = dtype
        # kept open across `write` calls; `close()` flushes and syncs them
        self.tokens = open(directory / TOKENS, "wb")  # noqa: SIM115
        self.offsets = open(directory / OFFSETS, "wb")  # noqa: SIM115
        self.segment_a = open(directory / SEGMENT_A, "wb")  # noqa: SIM115
        self.num_examples = 0
        self.num_tokens = 0
        self.length_counts = np.zeros(max_length + 1, dtype=np.int64)  # histogram of example lengths
        np.zeros(1, OFFSET_DTYPE).tofile(self.offsets)

    def write(self, tokens: np.ndarray, lengths: np.ndarray, segment_a: np.ndarray) -> None:
        with library_writes(self.dir):
            tokens.astype(self.dtype, copy=False).tofile(self.tokens)
            (self.num_tokens + np.cumsum(lengths, dtype=OFFSET_DTYPE)).tofile(self.offsets)
            segment_a.astype(SEGMENT_A_DTYPE, copy=False).tofile(self.segment_a)
        self.num_examples += len(lengths)
        self.num_tokens += int(lengths.sum())
        self.length_counts += np.bincount(lengths, minlength=len(self.length_counts))

    def close(self) -> None:
        for f in (self.tokens, self.offsets, self.segment_a):
            f.flush()
            os.fsync(f.fileno())
            f.close()
