"""`electra score`: one likelihood score per sentence, from a masked LM or from an Electric model.

Two methods:

- ``pll``: the masked-LM pseudo-log-likelihood (Salazar et al., ACL 2020, "Masked Language Model Scoring"): for each
  token t of the sentence, mask t alone and add ``log p(x_t | x_\\t)``; [CLS] and [SEP] are context, never scored.
  One masked copy per token, the copies of all sentences batched together (``batch_size`` copies per forward pass).
- ``electric``: one forward pass of an Electric model (Clark et al., EMNLP 2020). Its discriminator's output at a
  position is the energy ``E(x)_t``: the NCE logit of "this token was sampled from the noise"
  (``electra.electric.nce_logits``) is ``E(x)_t + log q(x_t | x_\\t) + log(k / n)``, so a high output means an
  implausible token. The sentence's score is ``-sum_t E(x)_t`` over its tokens ([CLS] and [SEP] excluded), the
  unnormalised log-likelihood the paper rescores with; higher is more plausible, as with ``pll``.

Input: a ``.tsv`` file (a header line; the text in ``text_column``, default the first column), a ``.jsonl`` file
(one object per line; the text in ``text_column``, default ``"text"``), or any other file as plain text, one sentence
per line. Output: the same rows in the same order plus a score (a ``score`` column, a ``"score"`` key, or
``TEXT<TAB>SCORE`` for plain text).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from electra.checkpoint import is_run_dir, read_run_config, resolve_checkpoint
from electra.errors import ElectraError
from electra.io import write_text
from electra.loading import load_model
from electra.tokenizer import WordPiece

Method = Literal["pll", "electric"]
METHODS = ("pll", "electric")
SCORE = "score"


# ---------------------------------------------------------------------------------------------- the two scores


def _batches(n: int, size: int) -> Iterator[range]:
    return (range(i, min(i + size, n)) for i in range(0, n, size))


def _padded(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of `rows` padded on the right to the longest."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids, torch.arange(width)[None] < torch.tensor([len(r) for r in rows])[:, None]


@torch.no_grad()
def pseudo_log_likelihoods(
    generator: nn.Module,
    sentences: list[list[int]],
    mask_id: int,
    pad_id: int,
    batch_size: int = 64,
    progress: Callable[[int], Any] | None = None,
) -> list[float]:
    """The PLL of each sentence (ids with [CLS] first and [SEP] last): ``sum_t log p(x_t | x_\\t)`` over its inner
    tokens, each from a copy of the sentence with t alone masked. `generator(ids, mask, types, positions)` gives the
    vocabulary logits at `positions` (our `Generator`). `progress(k)` is told each time k copies are done."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))  # similar lengths batch together
    copies = [(i, t) for i in order for t in range(1, len(sentences[i]) - 1)]
    totals = [0.0] * len(sentences)
    for chunk in _batches(len(copies), batch_size):
        rows, where = [], []
        for i, t in (copies[k] for k in chunk):
            row = list(sentences[i])
            row[t] = mask_id
            rows.append(row)
            where.append(t)
        ids, attention = _padded(rows, pad_id)
        positions = torch.tensor(where)[:, None]
        logits = generator(ids, attention.long(), torch.zeros_like(ids), positions=positions)[:, 0]  # (B, V)
        targets = torch.tensor([sentences[copies[k][0]][copies[k][1]] for k in chunk])
        logp = torch.log_softmax(logits.double(), dim=-1).gather(1, targets[:, None])[:, 0]
        for k, value in zip(chunk, logp.tolist(), strict=True):
            totals[copies[k][0]] += value
        if progress is not None:
            progress(len(chunk))
    return totals


@torch.no_grad()
def electric_scores(
    discriminator: nn.Module,
    sentences: list[list[int]],
    pad_id: int,
    batch_size: int = 64,
    progress: Callable[[int], Any] | None = None,
) -> list[float]:
    """Electric's score of each sentence (ids with [CLS] first and [SEP] last): minus the sum of the discriminator's
    outputs (the energies) over its inner tokens, one forward pass per batch of `batch_size` sentences.
    `progress(k)` is told each time k sentences are done."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    totals = [0.0] * len(sentences)
    for chunk in _batches(len(order), batch_size):
        rows = [sentences[order[k]] for k in chunk]
        ids, attention = _padded(rows, pad_id)
        energies = discriminator(ids, attention.long(), torch.zeros_like(ids)).double()  # (B, L)
        inner = torch.zeros_like(attention)
        for b, row in enumerate(rows):
            inner[b, 1 : len(row) - 1] = True
        for k, value in zip(chunk, (-(energies * inner).sum(-1)).tolist(), strict=True):
            totals[order[k]] = value
        if progress is not None:
            progress(len(chunk))
    return totals


# ---------------------------------------------------------------------------------------------- files


@dataclass
class Table:
    """The rows of an input file and the text of each, ready to be written back with a score added."""

    kind: Literal["tsv", "jsonl", "text"]
    header: str | None
    rows: list[Any]  # tsv: the line without its newline; jsonl: the object; text: the line
    texts: list[str]

    def render(self, scores: list[float]) -> str:
        lines = [] if self.header is None else [f"{self.header}\t{SCORE}"]
        for row, value in zip(self.rows, scores, strict=True):
            if self.kind == "jsonl":
                lines.append(json.dumps({**row, SCORE: value}, ensure_ascii=False))
            else:
                lines.append(f"{row}\t{value!r}")
        return "".join(line + "\n" for line in lines)


def file_kind(path: Path) -> Literal["tsv", "jsonl", "text"]:
    suffix = path.suffix.lower()
    return "tsv" if suffix == ".tsv" else "jsonl" if suffix in (".jsonl", ".ndjson") else "text"


def read_table(path: str | os.PathLike, text_column: str | None = None) -> Table:
    """The rows of `path` (TSV with a header, JSONL, or plain text by its suffix) and the text to score in each."""
    path = Path(path)
    if not path.is_file():
        raise ElectraError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ElectraError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    kind = file_kind(path)
    if kind == "text":
        if text_column is not None:
            raise ElectraError(f"text_column is for .tsv and .jsonl files; {path} is read as plain text, one per line")
        return Table("text", None, lines, lines)
    if kind == "tsv":
        if not lines:
            raise ElectraError(f"{path} is empty; a .tsv file needs a header line")
        names = lines[0].split("\t")
        if SCORE in names:
            raise ElectraError(f"{path} already has a '{SCORE}' column")
        column = names[0] if text_column is None else text_column
        if column not in names:
            raise ElectraError(
                f"{path} has no column {column!r} (text_column={column!r}); its columns: {', '.join(names)}"
            )
        at = names.index(column)
        texts = []
        for number, line in enumerate(lines[1:], start=2):
            cells = line.split("\t")
            if len(cells) <= at:
                raise ElectraError(f"{path}:{number}: {len(cells)} columns, no {column!r} (column {at + 1})")
            texts.append(cells[at])
        return Table("tsv", lines[0], lines[1:], texts)
    field = "text" if text_column is None else text_column
    rows, texts = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise ElectraError(f"{path}:{number}: empty line; a .jsonl file has one JSON object per line")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ElectraError(f"{path}:{number}: not JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get(field), str):
            what = (
                "not a JSON object"
                if not isinstance(row, dict)
                else f"no string field {field!r} (text_column={field!r})"
            )
            raise ElectraError(f"{path}:{number}: {what}")
        if SCORE in row:
            raise ElectraError(f"{path}:{number}: the object already has a '{SCORE}' field")
        rows.append(row)
        texts.append(row[field])
    return Table("jsonl", None, rows, texts)


# ---------------------------------------------------------------------------------------------- the workflow


def default_method(model: str | os.PathLike, checkpoint: str = "latest") -> Method:
    """The method `model` is made for: an Electric run or an exported `ElectraForPreTraining` scores in one pass; a
    masked LM (a masked-LM run, an `ElectraForMaskedLM` directory) by PLL. Anything else asks for `method`."""
    path = Path(model)
    if is_run_dir(path):
        objective = read_run_config(resolve_checkpoint(path, checkpoint))["config"].get("objective", "electra")
        if objective == "electric":
            return "electric"
        if objective in ("mlm", "replace-mlm", "all-tokens-mlm"):
            return "pll"
        raise ElectraError(
            f"run {model} (objective {objective}) has a masked-LM generator and a replaced-token discriminator: "
            "pass method='pll' (the generator's pseudo-log-likelihood) or method='electric' (the discriminator's "
            "one-pass score, a likelihood only for an Electric model)"
        )
    architectures: list[str] = []
    if (path / "config.json").is_file():
        try:
            architectures = json.loads((path / "config.json").read_text()).get("architectures") or []
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            architectures = []  # load_model names the problem
    if "ElectraForMaskedLM" in architectures:
        return "pll"
    if "ElectraForPreTraining" in architectures:
        return "electric"
    if not path.exists() and str(model).count("/") != 1:
        raise ElectraError(f"model {model} not found: expected a run directory, a model directory or a hub id")
    where = "in its config.json" if path.is_dir() else "known without downloading it"
    raise ElectraError(
        f"cannot tell how to score with model {model} (neither ElectraForMaskedLM nor ElectraForPreTraining {where}): "
        "pass method='pll' for a masked LM or method='electric' for an Electric discriminator"
    )


def encode_all(tokenizer: WordPiece, texts: list[str], max_length: int) -> tuple[list[list[int]], int]:
    """[CLS] text [SEP] for each text, cut to `max_length` tokens; and how many texts were cut."""
    cut = 0
    out = []
    for ids in tokenizer.encode_batch(texts):
        if len(ids) > max_length - 2:
            ids = ids[: max_length - 2]
            cut += 1
        out.append([tokenizer.cls_id, *ids, tokenizer.sep_id])
    return out, cut


def score_file(
    model: str | os.PathLike,
    file: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    method: Method | None = None,
    text_column: str | None = None,
    batch_size: int = 64,
    max_length: int | None = None,
    checkpoint: str = "latest",
    progress: bool = True,
) -> dict[str, Any]:
    """Score every row of `file` with `model` and write the rows with their scores to `out` (atomically) or, when
    `out` is None, to stdout; what `electra score` does (`electra.api.score`). `method`: "pll" or "electric" (None:
    the one `model` is made for); `text_column`: the TSV column or JSONL field of the text; `max_length`: tokens kept
    per sentence with [CLS]/[SEP] (default the model's positions). Returns {"method", "rows", "tokens", "truncated",
    "max_length", "out", "scores"}.

        from electra.api import score
        score("runs/electric", "hypotheses.tsv", "scored.tsv", text_column="sentence")
    """
    if method is not None and method not in METHODS:
        raise ElectraError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ElectraError(f"batch_size must be a positive integer, got {batch_size!r}")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 3):
        raise ElectraError(f"max_length must be an integer of at least 3 ([CLS], a token, [SEP]), got {max_length!r}")
    table = read_table(file, text_column)
    method = method or default_method(model, checkpoint)
    module, tokenizer = load_model(model, "discriminator" if method == "electric" else "generator", checkpoint)
    limit = module.config.max_position_embeddings
    if max_length is not None and max_length > limit:
        raise ElectraError(f"max_length must be at most {limit} (the positions of model {model}), got {max_length}")
    sentences, cut = encode_all(tokenizer, table.texts, max_length or limit)
    tokens = sum(len(s) - 2 for s in sentences)
    bar = None
    if progress:
        from tqdm import tqdm

        total = tokens if method == "pll" else len(sentences)
        unit = "token" if method == "pll" else "sentence"
        bar = tqdm(total=total, unit=unit, desc=f"score ({method})", file=sys.stderr, dynamic_ncols=True)
    try:
        if method == "pll":
            scores = pseudo_log_likelihoods(
                module, sentences, tokenizer.mask_id, tokenizer.pad_id, batch_size, bar and bar.update
            )
        else:
            scores = electric_scores(module, sentences, tokenizer.pad_id, batch_size, bar and bar.update)
    finally:
        if bar is not None:
            bar.close()
    text = table.render(scores)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text(out, text)
    return {
        "method": method,
        "rows": len(scores),
        "tokens": tokens,
        "truncated": cut,
        "max_length": max_length or limit,
        "out": None if out is None else str(out),
        "scores": scores,
    }
