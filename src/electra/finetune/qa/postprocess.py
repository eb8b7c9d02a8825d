"""From per-feature model outputs to answers, n-best lists and null odds, as qa_metrics.py `write_predictions`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from electra.finetune.qa.data import QAFeature, SquadExample
from electra.tokenizer import WordPiece

N_BEST_SIZE = 20  # google-research/electra configure_finetuning.py
MAX_ANSWER_LENGTH = 30  # idem
NA_THRESHOLD = -2.75  # idem (`qa_na_threshold`), for the answerable classifier's null odds


@dataclass
class Candidate:
    text: str
    start_logit: float
    end_logit: float
    probability: float = 0.0


def _strip_spaces(text: str) -> tuple[str, dict[int, int]]:
    chars, ns_to_s = [], {}
    for i, c in enumerate(text):
        if c == " ":
            continue
        ns_to_s[len(chars)] = i
        chars.append(c)
    return "".join(chars), ns_to_s


def basic_tokens(text: str, tokenizer: WordPiece) -> list[str]:
    """BERT's basic tokenization (clean, lower-case and strip accents when uncased, split off punctuation), as the
    tokenizer's own normalizer and pre-tokenizer do it."""
    backend = tokenizer.backend
    if backend.normalizer is not None:
        text = backend.normalizer.normalize_str(text)
    elif tokenizer.lowercase:
        text = text.lower()
    if backend.pre_tokenizer is None:
        return text.split()
    return [piece for piece, _ in backend.pre_tokenizer.pre_tokenize_str(text)]


def final_text(pred_text: str, orig_text: str, tokenizer: WordPiece) -> str:
    """The part of the original span text `orig_text` that the normalised `pred_text` covers ("Steve Smith" of
    "Steve Smith's"), else `orig_text` (qa_metrics.py `get_final_text`)."""
    tok_text = " ".join(basic_tokens(orig_text, tokenizer))
    start = tok_text.find(pred_text)
    if start == -1:
        return orig_text
    end = start + len(pred_text) - 1
    orig_ns, orig_ns_to_s = _strip_spaces(orig_text)
    tok_ns, tok_ns_to_s = _strip_spaces(tok_text)
    if len(orig_ns) != len(tok_ns):
        return orig_text
    tok_s_to_ns = {s: ns for ns, s in tok_ns_to_s.items()}
    if start not in tok_s_to_ns or end not in tok_s_to_ns:
        return orig_text
    orig_start = orig_ns_to_s.get(tok_s_to_ns[start])
    orig_end = orig_ns_to_s.get(tok_s_to_ns[end])
    if orig_start is None or orig_end is None:
        return orig_text
    return orig_text[orig_start : orig_end + 1]


def span_text(example: SquadExample, feature: QAFeature, start: int, end: int, tokenizer: WordPiece) -> str:
    """The answer text of pieces [start, end] of `feature`."""
    pieces = tokenizer.convert_ids_to_tokens(feature.input_ids[start : end + 1])
    tok_text = " ".join(pieces).replace(" ##", "").replace("##", "")
    tok_text = " ".join(tok_text.strip().split())
    first, last = feature.token_to_orig_map[start], feature.token_to_orig_map[end]
    orig_text = " ".join(example.doc_tokens[first : last + 1])
    return final_text(tok_text, orig_text, tokenizer)


def best_indexes(logits: np.ndarray, n: int) -> list[int]:
    """Indexes of the `n` largest logits, largest first (ties: the earlier index first)."""
    order = sorted(range(len(logits)), key=lambda i: logits[i], reverse=True)
    return order[:n]


def softmax(scores: list[float]) -> list[float]:
    if not scores:
        return []
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [x / total for x in exps]


def _pairs(result: dict[str, np.ndarray], n_best_size: int) -> Iterator[tuple[int, int, float, float]]:
    """(start, end, start score, end score) candidates of one feature."""
    if "start_top_index" in result:  # joint prediction: the beam
        for i, s in enumerate(result["start_top_index"]):
            for j, e in enumerate(result["end_top_index"][i]):
                yield int(s), int(e), float(result["start_top_log_probs"][i]), float(result["end_top_log_probs"][i, j])
    else:
        starts = best_indexes(result["start_logits"], n_best_size)
        ends = best_indexes(result["end_logits"], n_best_size)
        for s in starts:
            for e in ends:
                yield s, e, float(result["start_logits"][s]), float(result["end_logits"][e])


def nbest_for_example(
    example: SquadExample,
    features: list[QAFeature],
    results: list[dict[str, np.ndarray]],
    tokenizer: WordPiece,
    n_best_size: int = N_BEST_SIZE,
    max_answer_length: int = MAX_ANSWER_LENGTH,
) -> tuple[list[Candidate], float]:
    """(the n-best list, best first; the null score over the example's features)."""
    prelim = []
    null = 1e6  # the official starting value: what a question without any feature keeps
    for f, (feature, result) in enumerate(zip(features, results, strict=True)):
        if "answerable_logit" in result:
            feature_null = float(result["answerable_logit"])
        else:
            feature_null = float(result["start_logits"][0] + result["end_logits"][0])
        null = min(null, feature_null)
        n_tokens = len(feature.input_ids)
        for s, e, s_score, e_score in _pairs(result, n_best_size):
            if s >= n_tokens or e >= n_tokens or s == 0:
                continue
            if s not in feature.token_to_orig_map or e not in feature.token_to_orig_map:
                continue
            if not feature.token_is_max_context.get(s, False):
                continue
            if e < s or e - s + 1 > max_answer_length:
                continue
            prelim.append((s_score + e_score, f, s, e, s_score, e_score))
    prelim.sort(key=lambda p: p[0], reverse=True)  # stable: equal scores keep their discovery order
    nbest: list[Candidate] = []
    seen: set[str] = set()
    for _, f, s, e, s_score, e_score in prelim:
        if len(nbest) >= n_best_size:
            break
        text = span_text(example, features[f], s, e, tokenizer)
        if text in seen:
            continue
        seen.add(text)
        nbest.append(Candidate(text, s_score, e_score))
    if not nbest:  # the official nonce prediction
        nbest.append(Candidate("empty", 0.0, 0.0))
    for c, p in zip(nbest, softmax([c.start_logit + c.end_logit for c in nbest]), strict=True):
        c.probability = p
    return nbest, null


def predict_answers(
    examples: list[SquadExample],
    features: list[QAFeature],
    results: list[dict[str, np.ndarray]],
    tokenizer: WordPiece,
    version: str,
    n_best_size: int = N_BEST_SIZE,
    max_answer_length: int = MAX_ANSWER_LENGTH,
) -> tuple[dict[str, str], dict[str, float], dict[str, list[dict[str, Any]]]]:
    """(answers, null odds, n-best lists) by question id from each feature's outputs `results[i]`; SQuAD 2.0
    answers are the best non-empty spans (`apply_null_threshold` gives the submission format)."""
    by_example: dict[int, list[int]] = {}
    for i, f in enumerate(features):
        by_example.setdefault(f.example_index, []).append(i)
    answers: dict[str, str] = {}
    null_odds: dict[str, float] = {}
    nbest_json: dict[str, list[dict[str, Any]]] = {}
    for e, example in enumerate(examples):
        rows = by_example.get(e, [])
        nbest, null = nbest_for_example(
            example, [features[i] for i in rows], [results[i] for i in rows], tokenizer, n_best_size, max_answer_length
        )
        nbest_json[example.qid] = [c.__dict__.copy() for c in nbest]
        if version == "1.1":
            answers[example.qid] = nbest[0].text
            continue
        best = next((c for c in nbest if c.text), nbest[0])
        answers[example.qid] = best.text
        has_classifier = bool(rows) and "answerable_logit" in results[rows[0]]
        null_odds[example.qid] = null if has_classifier else null - best.start_logit - best.end_logit
    return answers, null_odds, nbest_json


def apply_null_threshold(answers: dict[str, str], null_odds: dict[str, float], threshold: float) -> dict[str, str]:
    """The official submission format: "" where the null odds exceed `threshold`."""
    return {q: ("" if null_odds[q] > threshold else a) for q, a in answers.items()}
