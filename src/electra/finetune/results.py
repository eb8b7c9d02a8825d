"""Run records on disk and their aggregation into OUT/results.json and results.md; a GLUE average over fewer than
the official README's 8 tasks is labelled "GLUE-k (no X, Y)" (docs/faithfulness.md §6.5)."""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from electra.errors import ElectraError
from electra.finetune.tasks import AVERAGE_TASKS, TASKS, Task
from electra.io import write_bytes, write_json

STATS = ("median", "mean", "std", "max", "min")


def save_predictions(path: str | Path, index: Iterable[str], outputs: np.ndarray, labels: np.ndarray | None) -> None:
    import io

    arrays = {"index": np.array(list(index), dtype=np.str_), "outputs": np.asarray(outputs, np.float32)}
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())


def load_predictions(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ElectraError(f"cannot read predictions {path}: {err}") from None


def read_record(path: str | Path) -> dict[str, Any]:
    """A JSON record a run wrote (its metrics.json), or one clear error."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:  # (ValueError: not JSON, or not UTF-8 text)
        raise ElectraError(f"cannot read {path}: {err}") from None
    if not isinstance(record, dict):
        raise ElectraError(f"{path}: not a JSON object; expected what `electra finetune` writes")
    return record


def load_runs(out: str | Path, task: Task | str) -> list[dict[str, Any]]:
    """Every complete run of `task` (or task folder) under `out`, each with its "dir", sorted by seed."""
    folder = Path(out) / (task if isinstance(task, str) else task.name)
    runs = []
    for metrics_file in sorted(folder.glob("run_*/metrics.json")):
        record = read_record(metrics_file)
        if not isinstance(task, str) and (problem := _run_problem(record, task)) is not None:
            raise ElectraError(f"{metrics_file}: {problem}; expected a metrics.json of `electra finetune`")
        runs.append({**record, "dir": str(metrics_file.parent)})
    return sorted(runs, key=lambda r: r.get("seed", 0))


def rank(run: dict[str, Any], task: Task) -> tuple[float, int]:
    """How runs of a task rank on dev, higher first: by the task's score (NaN last), ties to the lower seed."""
    score = run["metrics"][task.score]
    return (score if score == score else -math.inf), -run.get("seed", 0)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _run_problem(record: Any, task: Task) -> str | None:
    """What is wrong with a run's metrics.json record (the fields the results and the report read), or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    metrics = record.get("metrics")
    if not isinstance(metrics, dict) or not all(_number(v) for v in metrics.values()):
        return "'metrics' is not an object of numbers"
    if task.score not in metrics:
        return f"'metrics' has no {task.score!r} (the task's score)"
    for key in ("seed", "n_train", "n_train_available", "max_train_examples"):
        if record.get(key) is not None and not (isinstance(record[key], int) and _number(record[key])):
            return f"{key!r} is not an integer"
    for key in ("score", "dev_auc", "dev_auc_chance_band"):
        if record.get(key) is not None and not _number(record[key]):
            return f"{key!r} is not a number"
    majority = record.get("majority_metrics")
    if majority is not None and not (isinstance(majority, dict) and all(_number(v) for v in majority.values())):
        return "'majority_metrics' is not an object of numbers"
    return None


def run_dev_auc(run: dict[str, Any], task: Task) -> dict[str, float | None]:
    """The run's recorded `dev_auc` and `dev_auc_chance_band`, for older runs computed from the stored dev outputs
    (empty where there are none or the file cannot be read: the AUC must not hide the run's metrics)."""
    from electra.finetune.metrics import dev_auc_fields

    if "dev_auc" in run:
        return {"dev_auc": run["dev_auc"], "dev_auc_chance_band": run.get("dev_auc_chance_band")}
    path = Path(run["dir"]) / "predictions_dev.npz"
    if task.num_outputs != 2 or not path.is_file():
        return {}
    try:
        stored = load_predictions(path)
    except ElectraError:
        return {}
    if "labels" not in stored or "outputs" not in stored:
        return {}
    return dev_auc_fields(task, stored["outputs"], stored["labels"])


def _binding_cap(run: dict[str, Any]) -> int | None:
    """The train-set size a run was subsampled to, or None when the cap did not bind (for runs without
    `n_train_available`: when the training set is smaller than the cap)."""
    cap = run.get("max_train_examples")
    if cap is None or (run.get("n_train_available") is None and run.get("n_train", cap) < cap):
        return None
    return cap


def summarize(values: list[float]) -> dict[str, float]:
    """Median, mean, sample std (ddof=1; 0 for one run), max, min and the number of runs."""
    a = np.asarray(values, dtype=np.float64)
    return {
        "n": len(a),
        "median": float(np.median(a)),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "max": float(a.max()),
        "min": float(a.min()),
    }


def sweep_tasks(out: str | Path) -> list[Task]:
    """The tasks a sweep directory holds runs of: GLUE tasks, and your own data's (from the runs' config.json)."""
    from electra.finetune.own import task_from_record
    from electra.finetune.tasks import KINDS as OWN_KINDS

    found: dict[str, Task] = {}
    for metrics_file in sorted(Path(out).glob("*/run_*/metrics.json")):
        name = metrics_file.parent.parent.name
        config_file = metrics_file.parent / "config.json"
        if name in found:
            continue
        config = read_record(config_file) if config_file.is_file() else {}
        if isinstance(config, dict) and "own_task" in config:
            own = config["own_task"]
            if not isinstance(own, dict) or own.get("kind") not in OWN_KINDS or not _labels(own.get("labels")):
                raise ElectraError(f"{config_file}: 'own_task' is not what `electra finetune` writes for your own data")
            found[name] = task_from_record(name, own)
        elif name in TASKS:
            found[name] = TASKS[name]
    glue = [t for n, t in TASKS.items() if found.get(n) is t]  # GLUE tasks in the official order, then the others
    return glue + [t for t in found.values() if not t.glue]


def _labels(value: Any) -> bool:
    return value is None or isinstance(value, list) and all(isinstance(v, str) for v in value)


def aggregate(out: str | Path, tasks: Iterable[Task] | None = None) -> dict[str, Any]:
    """Per-task statistics over runs and the GLUE average for each statistic (`tasks`: those found in `out`)."""
    tasks = sweep_tasks(out) if tasks is None else list(tasks)
    per_task: dict[str, Any] = {}
    for task in tasks:
        runs = load_runs(out, task)
        if not runs:
            continue
        names = [name for name in runs[0]["metrics"] if all(name in r["metrics"] for r in runs)]  # (all runs have)
        metrics = {name: summarize([r["metrics"][name] for r in runs]) for name in names}
        ranking = [run_dev_auc(r, task) for r in runs]
        aucs = [r["dev_auc"] for r in ranking if r.get("dev_auc") is not None]
        # (your own data is never part of a GLUE table or average)
        entry = {"display": task.display, "glue": task.glue, "score": task.score, "n_runs": len(runs)}
        entry |= {"seeds": [r.get("seed") for r in runs], "metrics": metrics}
        entry["max_train_examples"] = sorted({_binding_cap(r) for r in runs}, key=str)
        entry["n_train"] = sorted({r.get("n_train") for r in runs}, key=str)
        # the task's full train set: the same for every run that records it (older records do not)
        entry["n_train_available"] = next((r["n_train_available"] for r in runs if r.get("n_train_available")), None)
        # the majority-class floor (the same for every run: one train subset) and the runs that fell to it
        entry["majority"] = next((r["majority_metrics"] for r in runs if r.get("majority_metrics")), None)
        entry["constant_runs"] = sum(bool(r.get("constant_predictions")) for r in runs)
        # two-class tasks: the runs' dev ROC AUC and the band around 0.5 that is chance (older records lack it)
        entry["dev_auc"] = summarize(aucs) if aucs else None
        band = next((r["dev_auc_chance_band"] for r in ranking if r.get("dev_auc_chance_band")), None)
        per_task[task.name] = entry | {"dev_auc_chance_band": band}
    covered = [name for name in AVERAGE_TASKS if per_task.get(name, {}).get("glue")]
    average = {}
    if covered:
        for stat in ("median", "mean", "max"):
            average[stat] = float(np.mean([per_task[n]["metrics"][TASKS[n].score][stat] for n in covered]))
    return {"tasks": per_task, "average": {"label": glue_label(covered), "tasks": covered, **average}}


def glue_label(covered: Iterable[str]) -> str:
    """`GLUE-8` when all 8 average tasks are present, else e.g. `GLUE-6 (no QQP, MNLI)`; for one task its name
    (`RTE`: its score, no average), for none `GLUE-0`."""
    covered = set(covered)
    present = [TASKS[n].display for n in AVERAGE_TASKS if n in covered]
    missing = [TASKS[n].display for n in AVERAGE_TASKS if n not in covered]
    if len(present) == 1:
        return present[0]
    label = f"GLUE-{len(present)}"
    return f"{label} (no {', '.join(missing)})" if missing and present else label


_CELLS = {n: t.metrics for n, t in TASKS.items()}  # richarddwang/electra_pytorch's README columns: every metric
_HEADINGS = dict(
    zip(
        TASKS,
        "CoLA (MCC)|SST-2 (acc)|MRPC (F1/acc)|STS-B (P/S)|QQP (F1/acc)|MNLI (m/mm)|QNLI (acc)"
        "|RTE (acc)|WNLI (acc)".split("|"),
        strict=True,
    )
)


def _detail_table(per_task: dict[str, Any], metrics: dict[str, tuple[str, ...]]) -> list[str]:
    """One row per (task, metric): the statistics over runs and the train-set size."""
    lines = ["| task | metric | runs | median | mean | std | max | min | train examples |", "|---" * 9 + "|"]
    for n, names in metrics.items():
        t = per_task[n]
        n_train = "/".join(str(x) for x in t["n_train"])
        for k in names:
            if k not in t["metrics"]:
                continue
            s = t["metrics"][k]
            lines.append(
                f"| {t['display']} | {k} | {s['n']} | {s['median']:.2f} | {s['mean']:.2f} | {s['std']:.2f} "
                f"| {s['max']:.2f} | {s['min']:.2f} | {n_train} |"
            )
    return lines


def _glue_table(per_task: dict[str, Any], average: dict[str, Any], model: str) -> list[str]:
    """A row per statistic over runs, a column per GLUE task and the average; then the details."""
    columns = [n for n in _CELLS if n in per_task or TASKS[n].in_average]
    averaged = len(average["tasks"]) > 1  # the average of one task is that task's column
    head = ["", *(_HEADINGS[n] for n in columns), *([f"Avg. {average['label']}"] if averaged else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stat in ("median", "mean", "max"):
        cells = [f"{model} {stat}".strip()]
        for n in columns:
            if n not in per_task:
                cells.append("—")
                continue
            m = per_task[n]["metrics"]
            cells.append("/".join(f"{m[k][stat]:.2f}" for k in _CELLS[n] if k in m))
        if averaged:
            cells.append(f"{average[stat]:.2f}" if stat in average else "—")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += _detail_table(per_task, {n: _CELLS[n] for n in columns if n in per_task})
    return lines


def at_chance(entry: dict[str, Any]) -> bool:
    """Whether a task's runs order the dev examples no better than chance: the median dev AUC within 0.5 plus or
    minus two standard errors of a ranking unrelated to the labels (electra.finetune.metrics.chance_auc_band)."""
    auc, band = entry.get("dev_auc"), entry.get("dev_auc_chance_band")
    return auc is not None and band is not None and abs(auc["median"] - 0.5) <= band


def chance_note(per_task: dict[str, dict[str, Any]]) -> str | None:
    """One sentence naming the tasks whose runs rank at chance, or None."""
    names = [
        f"{e['display']} (median {e['dev_auc']['median']:.3f}, chance 0.5 ± {e['dev_auc_chance_band']:.3f})"
        for e in per_task.values()
        if at_chance(e)
    ]
    if not names:
        return None
    return (
        "Dev ROC AUC at chance: "
        + ", ".join(names)
        + f". The runs have not learned {'these tasks' if len(names) > 1 else 'this task'}: "
        "their scores there are the label prior plus noise, not a measure of the model."
    )


def markdown_table(results: dict[str, Any], model: str = "") -> str:
    """The GLUE table: one row per statistic over runs; average over the covered tasks' score metrics."""
    per_task, average = results["tasks"], results["average"]
    if per_task and not any(t.get("glue", True) for t in per_task.values()):  # your own data: only the details
        lines = _detail_table(per_task, {n: tuple(t["metrics"]) for n, t in per_task.items()})
    else:
        lines = _glue_table(per_task, average, model)
    notes = []
    if 1 < len(average["tasks"]) < len(AVERAGE_TASKS):
        notes.append(f"The average covers only {', '.join(TASKS[n].display for n in average['tasks'])}.")
    constant = [
        f"{per_task[n]['display']} ({per_task[n]['constant_runs']} of {per_task[n]['n_runs']})"
        for n in per_task
        if per_task[n].get("constant_runs")
    ]
    if constant:
        notes.append(
            "Runs that predict one class (or one value) for every dev example, i.e. learnt nothing "
            "beyond the label prior: " + ", ".join(constant) + "."
        )
    if (note := chance_note(per_task)) is not None:
        notes.append(note)
    subsampled = {
        per_task[n]["display"]: per_task[n]["max_train_examples"]
        for n in per_task
        if any(v is not None for v in per_task[n]["max_train_examples"])
    }
    if subsampled:
        of = {per_task[n]["display"]: per_task[n].get("n_train_available") for n in per_task}
        notes.append(
            "Train sets subsampled: "
            + ", ".join(f"{k} to {v[0]}" + (f" of {of[k]:,}" if of.get(k) else "") for k, v in subsampled.items())
            + "."
        )
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def write_prediction_csv(path: str | Path, task: Task, index: Iterable[str], outputs: np.ndarray) -> None:
    """`id,prediction` rows: a label name, the predicted value, or the labels joined by the task's separator."""
    import csv
    import io

    from electra.finetune.metrics import predictions_from_outputs

    separator = task.files.label_separator if task.files is not None else ","
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "prediction"])
    for i, pred in zip(index, predictions_from_outputs(task, outputs), strict=True):
        if task.is_regression:
            value = f"{float(pred):.6g}"
        elif task.multilabel:
            value = separator.join(task.labels[k] for k in np.flatnonzero(pred))
        else:
            value = task.labels[int(pred)]
        writer.writerow([i, value])
    write_bytes(path, buf.getvalue().encode())


def write_results(out: str | Path, model: str = "", tasks: Iterable[Task] | None = None) -> dict[str, Any]:
    """Aggregate every complete run under `out` into results.json and results.md; returns the aggregate."""
    results = aggregate(out, tasks)
    write_json(Path(out) / "results.json", results)
    write_bytes(Path(out) / "results.md", markdown_table(results, model).encode())
    return results


def saved_run(run: Path, what: str, is_kind: Callable[[dict[str, Any]], bool], expected: str) -> dict[str, Any]:
    """The config.json of a complete `what` run saved with save_model, or one line saying what it lacks."""
    try:
        config = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        raise ElectraError(f"{run} is not a {what} run directory (no readable config.json)") from None
    if not isinstance(config, dict) or not is_kind(config):
        raise ElectraError(f"{run} is not a {what} run directory ({expected})")
    if not (run / "metrics.json").is_file():
        raise ElectraError(f"{what} run {run} is not complete (no metrics.json)")
    if not (run / "model.safetensors").is_file():
        raise ElectraError(f"{what} run {run} has no model.safetensors: finetune with save_model=True to keep it")
    return config
