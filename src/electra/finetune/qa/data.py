"""SQuAD 1.1 / 2.0 examples and features, as google-research/electra qa_tasks.py builds them (docs/qa.md)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from electra.errors import ElectraError
from electra.finetune.features import pad
from electra.tokenizer import WordPiece

MAX_QUERY_LENGTH = 64  # google-research/electra configure_finetuning.py
DOC_STRIDE = 128  # idem
MAX_SEQ_LENGTH = 512  # idem, the QA default
Version = Literal["1.1", "2.0"]
Role = Literal["train", "dev"]


@dataclass
class SquadExample:
    qid: str
    question: str
    context: str
    doc_tokens: list[str]
    answers: list[str]  # every gold answer text ([] when unanswerable); what the evaluation compares with
    answer_text: str = ""  # the training answer (the first one)
    start_word: int = -1  # doc-token span of the training answer; -1 when there is none
    end_word: int = -1
    is_impossible: bool = False


@dataclass
class SquadData:
    source: str
    version: Version
    role: Role
    examples: list[SquadExample]
    skipped: int = 0  # training answers not recoverable from the doc tokens (skipped, as the official code does)


@dataclass
class QAFeature:
    example_index: int
    span_index: int
    input_ids: list[int]
    token_type_ids: list[int]
    token_to_orig_map: dict[int, int]  # feature position -> doc-token index
    token_is_max_context: dict[int, bool]
    start_position: int = 0
    end_position: int = 0
    is_impossible: bool = False


def is_whitespace(c: str) -> bool:
    """The official whitespace test (google-research/electra finetune/qa/qa_tasks.py `is_whitespace`)."""
    return c in " \t\r\n" or ord(c) == 0x202F


def split_context(text: str) -> tuple[list[str], list[int]]:
    """(doc tokens, char -> doc-token index); whitespace characters map to the token before them (-1 at the start)."""
    words: list[str] = []
    char_to_word: list[int] = []
    after_space = True
    for c in text:
        if is_whitespace(c):
            after_space = True
        else:
            if after_space:
                words.append(c)
            else:
                words[-1] += c
            after_space = False
        char_to_word.append(len(words) - 1)
    return words, char_to_word


def _fail(where: str, what: str) -> ElectraError:
    return ElectraError(f"{where}: {what}")


def _read_file(path: Path) -> list[dict[str, Any]]:
    """The `data` list of an official-format file, or one line saying what is wrong with it."""
    expected = 'expected SQuAD JSON ({"version": ..., "data": [{"paragraphs": [{"context": ..., "qas": [...]}]}]})'
    if not path.is_file():
        raise _fail(str(path), f"no such file; {expected}")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise _fail(str(path), f"not UTF-8 text ({err.reason} at byte {err.start}); {expected}") from None
    except json.JSONDecodeError as err:
        raise _fail(str(path), f"not JSON ({err.msg} at line {err.lineno}); {expected}") from None
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise _fail(str(path), f"no top-level 'data' list; {expected}")
    return value["data"]


def _paragraphs_from_file(path: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for a, article in enumerate(_read_file(path)):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise _fail(f"{path} data[{a}]", "expected an article with a 'paragraphs' list")
        for p, paragraph in enumerate(article["paragraphs"]):
            where = f"{path} data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str):
                raise _fail(where, "expected a paragraph with a 'context' string")
            if not isinstance(paragraph.get("qas"), list):
                raise _fail(where, "expected a paragraph with a 'qas' list")
            out.append((where, paragraph))
    return out


def _paragraphs_from_hub(source: str, role: Role) -> list[tuple[str, dict[str, Any]]]:
    """The rows of a `datasets` SQuAD dataset, one paragraph per row in the official structure."""
    from electra import hub

    ds, _ = hub.load_dataset(source, role)
    missing = {"id", "context", "question", "answers"} - set(ds.column_names)
    if missing:
        raise ElectraError(f"--{role} {source}: not a SQuAD dataset (no column {', '.join(sorted(missing))})")
    out = []
    for i, row in enumerate(ds):
        ans = row["answers"] or {"text": [], "answer_start": []}
        answers = [{"text": t, "answer_start": s} for t, s in zip(ans["text"], ans["answer_start"], strict=True)]
        qa = {"id": row["id"], "question": row["question"], "answers": answers, "is_impossible": not answers}
        out.append((f"{source} row {i}", {"context": row["context"], "qas": [qa]}))
    return out


def _answers(qa: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = qa.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(a, dict) and isinstance(a.get("text"), str) and isinstance(a.get("answer_start"), int) for a in value
    ):
        raise _fail(where, f"'{key}' must be a list of {{'text': str, 'answer_start': int}}")
    return value


def _normalized(text: str) -> str:
    return " ".join(text.split()).lower()


def _check_gold(text: str, start: int, context: str, where: str) -> None:
    """A dev answer lies inside its context; its `answer_start` may be off (only its text is scored), but then the
    text must still be somewhere in the context."""
    if not text.strip() or start < 0 or start + len(text) > len(context):
        raise _fail(
            where, f"answer {text!r} at answer_start {start} lies outside the context ({len(context)} characters)"
        )
    if _normalized(text) not in _normalized(context):
        raise _fail(where, f"answer {text!r} is not in the context")


def load_squad(source: str | Path, version: Version, role: Role) -> SquadData:
    """Examples from an official-format file (v1.1 or v2.0) or `hf:squad` / `hf:squad_v2`; a training answer the
    whitespace doc tokens cannot recover is skipped, as the official code does, and counted in `skipped`."""
    source = str(source)
    if version not in ("1.1", "2.0"):
        raise ElectraError(f"SQuAD version must be '1.1' or '2.0', got {version!r}")
    paragraphs = _paragraphs_from_hub(source, role) if source.startswith("hf:") else _paragraphs_from_file(Path(source))
    examples: list[SquadExample] = []
    skipped = 0
    seen: set[str] = set()
    for where_p, paragraph in paragraphs:
        context = paragraph["context"]
        doc_tokens, char_to_word = split_context(context)
        for q, qa in enumerate(paragraph["qas"]):
            where = f"{where_p}.qas[{q}]"
            if not isinstance(qa, dict) or not isinstance(qa.get("id"), str) or not isinstance(qa.get("question"), str):
                raise _fail(where, "expected a question with an 'id' string and a 'question' string")
            if qa["id"] in seen:
                raise _fail(where, f"question id {qa['id']!r} occurs twice")
            seen.add(qa["id"])
            answers = _answers(qa, "answers", where)
            _answers(qa, "plausible_answers", where)  # SQuAD 2.0; checked, never used as gold
            impossible = bool(qa.get("is_impossible", not answers)) if version == "2.0" else False
            if version == "1.1" and not answers:
                hint = "is it a SQuAD 2.0 file? pass version='2.0'" if "is_impossible" in qa else "SQuAD 1.1 needs one"
                raise _fail(where, f"question {qa['id']!r} has no answers ({hint})")
            if role != "train":  # gold answers: scored by their text, which must be in the context where it says
                for a in answers:
                    _check_gold(a["text"], a["answer_start"], context, where)
            ex = SquadExample(qa["id"], qa["question"], context, doc_tokens, [a["text"] for a in answers])
            ex.is_impossible = impossible
            if role == "train" and not impossible:
                if not answers:
                    raise _fail(where, f"question {qa['id']!r} has no answers and is not marked is_impossible")
                first = answers[0]
                start, text = first["answer_start"], first["text"]
                if not text or start < 0 or start + len(text) > len(context):
                    outside = f"lies outside the context ({len(context)} characters)"
                    raise _fail(where, f"answer {text!r} at answer_start {start} {outside}")
                if _normalized(context[start : start + len(text)]) != _normalized(text):
                    raise _fail(
                        where,
                        f"answer {text!r} is not at answer_start {start} (the context has "
                        f"{context[start : start + len(text)]!r} there)",
                    )
                ex.answer_text = text
                ex.start_word = char_to_word[start]
                ex.end_word = char_to_word[start + len(text) - 1]
                actual = " ".join(doc_tokens[ex.start_word : ex.end_word + 1]).lower()
                if actual.find(_normalized(text)) == -1:
                    skipped += 1
                    continue
            examples.append(ex)
    if not examples:
        raise ElectraError(f"{source}: no questions found; expected SQuAD {version} data")
    return SquadData(source, version, role, examples, skipped)


def subsample(data: SquadData, n: int | None) -> SquadData:
    """A fixed random subset of `n` examples (the same for every seed), in the original order."""
    if n is None or n >= len(data.examples):
        return data
    keep = sorted(random.Random(0).sample(range(len(data.examples)), n))
    return SquadData(data.source, data.version, data.role, [data.examples[i] for i in keep], data.skipped)


def max_context_flags(spans: list[tuple[int, int]], span_index: int) -> list[bool]:
    """For each piece of span `span_index` ((start, length) pairs): whether this span is its "max context" span
    (google-research/electra finetune/qa/qa_tasks.py `_check_is_max_context`; the first best span wins ties)."""
    start, length = spans[span_index]
    flags = []
    for position in range(start, start + length):
        best, best_index = None, None
        for i, (s, n) in enumerate(spans):
            if not s <= position <= s + n - 1:
                continue
            score = min(position - s, s + n - 1 - position) + 0.01 * n
            if best is None or score > best:
                best, best_index = score, i
        flags.append(best_index == span_index)
    return flags


def _improve_span(doc_ids: list[int], start: int, end: int, answer_ids: list[int]) -> tuple[int, int]:
    """The sub-span of [start, end] whose pieces are exactly the answer's pieces, if any (official
    `_improve_answer_span`: "(1895-1943)." annotated as "1895" becomes the piece "1895")."""
    for new_start in range(start, end + 1):
        for new_end in range(end, new_start - 1, -1):
            if doc_ids[new_start : new_end + 1] == answer_ids:
                return new_start, new_end
    return start, end


def doc_spans(n_pieces: int, max_tokens_for_doc: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) of each window over the document's pieces (the official sliding window)."""
    spans = []
    start = 0
    while start < n_pieces:
        length = min(n_pieces - start, max_tokens_for_doc)
        spans.append((start, length))
        if start + length == n_pieces:
            break
        start += min(length, doc_stride)
    return spans


def featurize(
    examples: list[SquadExample],
    tokenizer: WordPiece,
    max_length: int = MAX_SEQ_LENGTH,
    max_query_length: int = MAX_QUERY_LENGTH,
    doc_stride: int = DOC_STRIDE,
    training: bool = False,
) -> list[QAFeature]:
    """Features of every doc span of every example (training: with start/end labels)."""
    features: list[QAFeature] = []
    cache: dict[int, tuple[list[int], list[int], list[int]]] = {}
    for e, ex in enumerate(examples):
        query = tokenizer.encode(ex.question)[:max_query_length]
        key = id(ex.doc_tokens)
        if key not in cache:  # the questions of one paragraph share its doc tokens
            tok_to_orig, orig_to_tok, doc_ids = [], [], []
            for i, pieces in enumerate(tokenizer.encode_batch(ex.doc_tokens) if ex.doc_tokens else []):
                orig_to_tok.append(len(doc_ids))
                tok_to_orig.extend([i] * len(pieces))
                doc_ids.extend(pieces)
            cache[key] = (tok_to_orig, orig_to_tok, doc_ids)
        tok_to_orig, orig_to_tok, doc_ids = cache[key]
        tok_start = tok_end = -1
        if training and not ex.is_impossible:
            tok_start = orig_to_tok[ex.start_word]
            tok_end = orig_to_tok[ex.end_word + 1] - 1 if ex.end_word < len(ex.doc_tokens) - 1 else len(doc_ids) - 1
            tok_start, tok_end = _improve_span(doc_ids, tok_start, tok_end, tokenizer.encode(ex.answer_text))
        max_tokens_for_doc = max_length - len(query) - 3  # [CLS], [SEP], [SEP]
        if max_tokens_for_doc < 1:
            raise ElectraError(
                f"max_length {max_length} leaves no room for the document after a {len(query)}-piece question"
            )
        spans = doc_spans(len(doc_ids), max_tokens_for_doc, doc_stride)
        offset = len(query) + 2
        for s, (span_start, span_len) in enumerate(spans):
            ids = [tokenizer.cls_id, *query, tokenizer.sep_id, *doc_ids[span_start : span_start + span_len]]
            ids.append(tokenizer.sep_id)
            types = [0] * offset + [1] * (span_len + 1)
            flags = max_context_flags(spans, s)
            to_orig = {offset + i: tok_to_orig[span_start + i] for i in range(span_len)}
            max_context = {offset + i: flags[i] for i in range(span_len)}
            f = QAFeature(e, s, ids, types, to_orig, max_context, is_impossible=ex.is_impossible)
            inside = span_start <= tok_start and tok_end <= span_start + span_len - 1
            if training and not ex.is_impossible and inside:
                f.start_position = tok_start - span_start + offset
                f.end_position = tok_end - span_start + offset
            features.append(f)
    return features


def collate(features: list[QAFeature], rows: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """A batch padded to its longest feature: input_ids, attention_mask, token_type_ids and the labels."""
    batch = [features[i] for i in rows]
    return {
        "input_ids": pad([f.input_ids for f in batch], pad_id),
        "attention_mask": pad([[1] * len(f.input_ids) for f in batch], 0),
        "token_type_ids": pad([f.token_type_ids for f in batch], 0),
        "start_positions": torch.tensor([f.start_position for f in batch]),
        "end_positions": torch.tensor([f.end_position for f in batch]),
        "is_impossible": torch.tensor([float(f.is_impossible) for f in batch]),
    }
