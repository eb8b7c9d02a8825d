"""Dev-set metrics of GLUE and your own data (docs/faithfulness.md §6.3), all x100, and the two-class ROC AUC."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

from electra.finetune.tasks import Task


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
    """The metrics of always predicting the train set's majority class (regression: its mean score)."""
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


def ranking_auc(task: Task, outputs: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC (0-1) of the logit margin, class 1 minus class 0, against the gold labels: 0.5 is chance, 1 a perfect
    ordering. None unless the task is single-label with two classes and both occur among the labels."""
    labels = np.asarray(labels)
    if task.is_regression or task.multilabel or task.num_outputs != 2 or np.unique(labels).size != 2:
        return None
    outputs = np.asarray(outputs, dtype=np.float64)
    return float(roc_auc_score(labels, outputs[:, 1] - outputs[:, 0]))


def chance_auc_band(labels: np.ndarray) -> float | None:
    """Two standard errors of the AUC of a ranking unrelated to the labels, sqrt((n0 + n1 + 1) / (12 n0 n1)) each
    (Mann-Whitney U under the null); None unless both classes occur."""
    counts = np.bincount(np.asarray(labels).astype(np.int64), minlength=2)
    if counts.size != 2 or counts.min() == 0:
        return None
    n0, n1 = int(counts[0]), int(counts[1])
    return float(2.0 * np.sqrt((n0 + n1 + 1) / (12.0 * n0 * n1)))


def dev_auc_fields(task: Task, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """A run's `dev_auc` and `dev_auc_chance_band` (None unless two classes that both occur)."""
    auc = ranking_auc(task, outputs, labels)
    return {"dev_auc": auc, "dev_auc_chance_band": chance_auc_band(labels) if auc is not None else None}
