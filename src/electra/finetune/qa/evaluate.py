"""Exact match and F1 as the official SQuAD v1.1 and v2.0 evaluation scripts define them (docs/qa.md)."""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Callable

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)

Gold = dict[str, list[str]]  # question id -> its gold answer texts ([] when unanswerable)


def normalize_answer(s: str) -> str:
    """Lower-case, remove punctuation, articles and extra whitespace (both official scripts)."""
    s = "".join(c for c in s.lower() if c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_v1(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_v1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def _max_over(metric: Callable[[str, str], float], prediction: str, golds: list[str]) -> float:
    return max(metric(prediction, g) for g in golds)


def squad_v1(gold: Gold, predictions: dict[str, str]) -> dict[str, float]:
    """{"exact", "f1", "total"}: the v1.1 script's exact_match and f1 (max over the gold answers)."""
    exact = f1 = 0.0
    for qid, golds in gold.items():
        if qid not in predictions:
            continue  # unanswered: 0
        exact += _max_over(exact_v1, predictions[qid], golds)
        f1 += _max_over(f1_v1, predictions[qid], golds)
    total = len(gold)
    return {"exact": 100.0 * exact / total, "f1": 100.0 * f1 / total, "total": total}


def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def exact_v2(gold: str, prediction: str) -> float:
    return float(normalize_answer(gold) == normalize_answer(prediction))


def f1_v2(gold: str, prediction: str) -> float:
    ref, pred = _tokens(gold), _tokens(prediction)
    if not ref or not pred:
        return float(ref == pred)  # no answer on either side: 1 if both agree
    same = sum((collections.Counter(ref) & collections.Counter(pred)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def raw_scores_v2(gold: Gold, predictions: dict[str, str]) -> tuple[dict[str, float], dict[str, float]]:
    """Per-question exact and F1 before any threshold; questions without a prediction are left out."""
    exact, f1 = {}, {}
    for qid, answers in gold.items():
        golds = [a for a in answers if normalize_answer(a)] or [""]
        if qid not in predictions:
            continue
        exact[qid] = max(exact_v2(g, predictions[qid]) for g in golds)
        f1[qid] = max(f1_v2(g, predictions[qid]) for g in golds)
    return exact, f1


def apply_no_answer_threshold(
    scores: dict[str, float], null_odds: dict[str, float], has_answer: dict[str, bool], threshold: float
) -> dict[str, float]:
    """A question whose null odds exceed `threshold` is answered "": it scores 1 exactly when it has no answer."""
    return {q: (float(not has_answer[q]) if null_odds[q] > threshold else s) for q, s in scores.items()}


def find_best_thresh(
    predictions: dict[str, str], scores: dict[str, float], null_odds: dict[str, float], has_answer: dict[str, bool]
) -> tuple[float, float]:
    """(best score x 100, its threshold): walk the questions by increasing null odds, answering each one in turn
    (the official `find_best_thresh`; threshold 0.0 when answering nothing is best)."""
    current = best = sum(1 for q in has_answer if not has_answer[q])
    threshold = 0.0
    for qid in sorted(null_odds, key=lambda q: null_odds[q]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            current += scores[qid]
        elif predictions[qid]:
            current -= 1
        if current > best:
            best, threshold = current, null_odds[qid]
    return 100.0 * best / len(scores), threshold


def _mean(scores: dict[str, float], qids: list[str]) -> float:
    return 100.0 * sum(scores[q] for q in qids) / len(qids)


def squad_v2(
    gold: Gold, predictions: dict[str, str], null_odds: dict[str, float] | None = None, threshold: float = 1.0
) -> dict[str, float]:
    """The v2.0 script's output: exact, f1, total, HasAns_*/NoAns_* and, with `null_odds`, best_exact(_thresh) and
    best_f1(_thresh); `threshold` is the script's `--na-prob-thresh`."""
    has_answer = {q: bool(a) for q, a in gold.items()}
    exact_raw, f1_raw = raw_scores_v2(gold, predictions)
    odds = null_odds if null_odds is not None else {q: 0.0 for q in predictions}
    exact = apply_no_answer_threshold(exact_raw, odds, has_answer, threshold)
    f1 = apply_no_answer_threshold(f1_raw, odds, has_answer, threshold)
    qids = list(exact)
    out: dict[str, float] = {"exact": _mean(exact, qids), "f1": _mean(f1, qids), "total": len(qids)}
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        subset = [q for q in qids if has_answer[q] == wanted]
        if subset:
            out.update({f"{name}_exact": _mean(exact, subset), f"{name}_f1": _mean(f1, subset)})
            out[f"{name}_total"] = len(subset)
    if null_odds is not None:
        out["best_exact"], out["best_exact_thresh"] = find_best_thresh(predictions, exact_raw, null_odds, has_answer)
        out["best_f1"], out["best_f1_thresh"] = find_best_thresh(predictions, f1_raw, null_odds, has_answer)
    return out


def squad_metrics(
    gold: Gold,
    predictions: dict[str, str],
    version: str,
    null_odds: dict[str, float] | None = None,
    threshold: float = 1.0,
) -> dict[str, float]:
    """The official metrics of `version` ("1.1" or "2.0")."""
    if version == "1.1":
        return squad_v1(gold, predictions)
    return squad_v2(gold, predictions, null_odds, threshold)
