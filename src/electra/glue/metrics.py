"""Dev-set metrics (docs/faithfulness.md §6.3), all x100.

CoLA MCC, STS-B Pearson/Spearman, F1 + accuracy for MRPC/QQP, accuracy otherwise. Your own data
(electra.glue.own): accuracy + macro-F1, Pearson/Spearman, or micro/macro-F1 for several labels per example.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from electra.glue.tasks import Task


def predictions_from_outputs(task: Task, outputs: np.ndarray) -> np.ndarray:
    """Class ids (argmax of the logits) or STS-B scores on the 0-5 scale, clipped to [0, 5]."""
    outputs = np.asarray(outputs)
    if task.is_regression:
        if task.regression_max is None:  # your own data: the raw value
            return outputs.reshape(-1)
        return np.clip(outputs.reshape(-1) * task.regression_max, 0.0, task.regression_max)
    if task.multilabel:  # a label where its sigmoid is above 1/2
        return outputs > 0
    return outputs.argmax(-1)


def compute_metrics(task: Task, outputs: np.ndarray, labels: np.ndarray, suffix: str = "") -> dict[str, float]:
    """The task's metrics for model outputs (logits, or regression values in label units) against gold labels."""
    outputs = np.asarray(outputs)
    labels = np.asarray(labels)
    if task.is_regression:
        pred = outputs.reshape(-1).astype(np.float64)
        gold = labels.reshape(-1).astype(np.float64)
        if pred.std() == 0 or gold.std() == 0:  # constant predictions: correlation undefined, reported as 0
            values = {"pearson": 0.0, "spearman": 0.0}
        else:
            values = {"pearson": float(pearsonr(pred, gold)[0]), "spearman": float(spearmanr(pred, gold)[0])}
    elif task.multilabel:
        pred, gold = outputs > 0, labels > 0.5
        values = {
            average + "_f1": float(f1_score(gold, pred, average=average, zero_division=0.0))
            for average in ("micro", "macro")
        }
    else:
        pred = outputs.argmax(-1)
        values = {"acc": float(accuracy_score(labels, pred))}
        if "mcc" in task.metrics:
            values = {"mcc": float(matthews_corrcoef(labels, pred))}
        if "f1" in task.metrics:
            values["f1"] = float(f1_score(labels, pred, pos_label=1, zero_division=0.0))
        if "macro_f1" in task.metrics:
            every = list(range(task.num_outputs))
            values["macro_f1"] = float(f1_score(labels, pred, labels=every, average="macro", zero_division=0.0))
    out = {}
    for name, value in values.items():
        out[name + suffix] = 100.0 * (0.0 if np.isnan(value) else value)
    return out


def majority_metrics(task: Task, train_labels: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The metrics of always predicting the train set's most frequent class (classification) or its mean score
    (regression): the floor a finetuned model must clear."""
    train_labels, labels = np.asarray(train_labels), np.asarray(labels)
    if task.is_regression:
        outputs = np.full((len(labels), 1), float(np.mean(train_labels)), np.float32)
    elif task.multilabel:  # each label that more than half of the train examples carry
        outputs = np.where(train_labels.mean(0) > 0.5, 1.0, -1.0)[None].repeat(len(labels), 0).astype(np.float32)
    else:
        top = int(np.bincount(train_labels.astype(np.int64), minlength=task.num_outputs).argmax())
        outputs = np.zeros((len(labels), task.num_outputs), np.float32)
        outputs[:, top] = 1.0
    return compute_metrics(task, outputs, labels)


def is_constant(task: Task, outputs: np.ndarray) -> bool:
    """Whether every prediction is the same class (classification) or the same value to 4 decimals (regression)."""
    pred = predictions_from_outputs(task, outputs)
    if task.multilabel:
        return bool(len(pred) > 0 and (pred == pred[:1]).all())
    return bool(len(pred) > 0 and np.unique(np.round(pred, 4)).size == 1)
