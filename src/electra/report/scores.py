"""Statistics over sweeps: task scores, GLUE averages, stability, and the noise bands the findings use."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from electra.report.runs import Sweep


def summarize(values: list[float]) -> dict[str, float]:
    """n, mean, sample std (ddof 1; 0 for one value), max, min."""
    a = np.asarray(values, dtype=np.float64)
    return {
        "n": len(a),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "max": float(a.max()),
        "min": float(a.min()),
    }


def task_score(sweep: Sweep, task: str, stat: str) -> float | None:
    t = sweep.per_task.get(task)
    return None if t is None else t["metrics"][t["score"]][stat]


def glue_average(sweep: Sweep, tasks: list[str], stat: str) -> float | None:
    scores = [task_score(sweep, t, stat) for t in tasks]
    return None if not tasks or any(s is None for s in scores) else float(np.mean(scores))


def stability(sweeps: list[Sweep], stat: str) -> dict[str, Any] | None:
    """Pretraining stability over sweeps: statistics of their GLUE averages over the tasks all of them have."""
    from electra.finetune.results import glue_label
    from electra.finetune.tasks import AVERAGE_TASKS

    if len(sweeps) < 2:
        return None
    common = [t for t in AVERAGE_TASKS if all(t in s.per_task for s in sweeps)]
    if not common:
        return None
    averages = {s.name: glue_average(s, common, stat) for s in sweeps}
    per_task = {t: summarize([task_score(s, t, stat) for s in sweeps]) for t in common}
    return {
        "label": glue_label(common),
        "tasks": common,
        "stat": stat,
        "averages": averages,
        "summary": summarize(list(averages.values())),
        "per_task": per_task,
    }


LEVEL_POINTS = 0.5  # GLUE averages closer than this to random initialisation's are always reported as level


def majority_average(sweep: Sweep, tasks: list[str]) -> float | None:
    """The GLUE average of always predicting each task's majority class (None if a task lacks the record)."""
    from electra.finetune.tasks import TASKS

    scores = [(sweep.per_task[t].get("majority") or {}).get(TASKS[t].score) for t in tasks]
    return float(np.mean(scores)) if scores and all(x is not None for x in scores) else None


def average_noise(sweep: Sweep, tasks: list[str]) -> float | None:
    """The standard error of a sweep's GLUE average over `tasks`, sqrt(sum_t sd_t^2 / n_t) / T; None when a task has
    fewer than two runs or no spread recorded."""
    from electra.finetune.tasks import TASKS

    terms = []
    for t in tasks:
        stats = (sweep.per_task.get(t, {}).get("metrics") or {}).get(TASKS[t].score) or {}
        if stats.get("std") is None or (stats.get("n") or 0) < 2:
            return None
        terms.append(stats["std"] ** 2 / stats["n"])
    return math.sqrt(sum(terms)) / len(tasks) if tasks else None


def level_band(a: Sweep, b: Sweep, tasks: list[str]) -> float:
    """How far apart two GLUE averages must be before the report calls one better: twice the standard error of
    their difference, at least LEVEL_POINTS."""
    noise = [average_noise(s, tasks) for s in (a, b)]
    if any(x is None for x in noise):
        return LEVEL_POINTS
    return max(LEVEL_POINTS, 2.0 * math.sqrt(noise[0] ** 2 + noise[1] ** 2))


def learned_nothing(sweep: Sweep, tasks: list[str]) -> bool:
    """Whether every two-class task of `tasks` that records a dev AUC is at chance in `sweep` (and one does)."""
    from electra.finetune.results import at_chance

    recorded = [sweep.per_task[t] for t in tasks if sweep.per_task.get(t, {}).get("dev_auc") is not None]
    return bool(recorded) and all(at_chance(e) for e in recorded)
