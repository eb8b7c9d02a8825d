"""`electra submit`: the GLUE-server zip from a sweep's stored test predictions, a run per task picked by dev score."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from electra.errors import ElectraError
from electra.finetune.metrics import predictions_from_outputs
from electra.finetune.results import load_predictions, load_runs, rank
from electra.finetune.tasks import TASKS, Task
from electra.io import write_bytes

SERVER_FILES = tuple(f"{name}.tsv" for name in "CoLA SST-2 MRPC STS-B QQP MNLI-m MNLI-mm QNLI RTE WNLI AX".split())


@dataclass(frozen=True)
class Pick:
    mode: str  # best | median | run | ensemble
    k: int = 1
    run: str = ""


def parse_pick(text: str) -> Pick:
    if text in ("best", "median"):
        return Pick(text)
    if text.startswith("ensemble:"):
        try:
            k = int(text.split(":", 1)[1])
        except ValueError:
            k = 0
        if k < 1:
            raise ElectraError(f"--pick {text}: expected ensemble:K with K a positive integer")
        return Pick("ensemble", k=k)
    name = text if text.startswith("run_") else f"run_{text}"
    if not name[4:].lstrip("-").isdigit():
        raise ElectraError(f"--pick {text!r}: expected best, median, ensemble:K, or a run (seed or run_<seed>)")
    return Pick("run", run=name)


def choose_runs(runs: list[dict[str, Any]], task: Task, pick: Pick) -> list[dict[str, Any]]:
    """The run(s) whose test predictions are used, chosen by the dev `task.score`."""
    if not runs:
        return []
    by_score = sorted(runs, key=lambda r: rank(r, task), reverse=True)
    if pick.mode == "best":
        return by_score[:1]
    if pick.mode == "median":
        ascending = by_score[::-1]
        return [ascending[(len(ascending) - 1) // 2]]  # the lower median: a real run, never an interpolation
    if pick.mode == "ensemble":
        return by_score[: pick.k]
    chosen = [r for r in runs if Path(r["dir"]).name == pick.run]
    if not chosen:
        raise ElectraError(
            f"{task.display} has no complete run {pick.run}; runs: {', '.join(Path(r['dir']).name for r in runs)}"
        )
    return chosen


def combine_outputs(task: Task, outputs: list[np.ndarray]) -> np.ndarray:
    """Average the runs: softmax probabilities for classification, raw values for regression."""
    if task.is_regression:
        return np.mean([o.reshape(-1) for o in outputs], axis=0)
    probs = []
    for o in outputs:
        z = o - o.max(-1, keepdims=True)
        e = np.exp(z)
        probs.append(e / e.sum(-1, keepdims=True))
    return np.mean(probs, axis=0)


def format_predictions(task: Task, index: np.ndarray, outputs: np.ndarray) -> str:
    """The server's TSV: header `index\tprediction`; label strings, or STS-B scores clipped to [0, 5]."""
    lines = ["index\tprediction"]
    values = predictions_from_outputs(task, outputs)
    if task.is_regression:
        lines += [f"{i}\t{v:.3f}" for i, v in zip(index, values, strict=True)]
    else:
        lines += [f"{i}\t{task.labels[c]}" for i, c in zip(index, values, strict=True)]
    return "\n".join(lines) + "\n"


def build_submission(sweep: str | Path, pick: Pick) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """{server file name: TSV text} for every test split with predictions, and a manifest of what was used."""
    files: dict[str, str] = {}
    manifest: list[dict[str, Any]] = []
    for task in TASKS.values():
        runs = load_runs(sweep, task)
        chosen = choose_runs(runs, task, pick)
        if not chosen:
            continue
        for split in task.test_splits:
            paths = [Path(r["dir"]) / f"predictions_{split.name}.npz" for r in chosen]
            missing = [p for p in paths if not p.is_file()]
            if missing and not any((Path(r["dir"]) / paths[0].name).is_file() for r in runs):
                continue  # no run of the sweep predicted this split (no test data)
            if missing:
                raise ElectraError(
                    f"{missing[0]} does not exist: this sweep predicted {task.display}'s test data only in the run "
                    "that was best on dev so far; use --pick best, or finetune with --test-predictions all"
                )
            preds = [_checked(load_predictions(p), task, p) for p in paths]
            index = preds[0]["index"]
            for p, path in zip(preds[1:], paths[1:], strict=True):
                if not np.array_equal(p["index"], index):
                    raise ElectraError(f"{path}: test rows differ from {paths[0]}; runs were made on different data")
            outputs = combine_outputs(task, [p["outputs"] for p in preds])
            files[split.submission] = format_predictions(task, index, outputs)
            manifest.append(
                {
                    "file": split.submission,
                    "task": task.display,
                    "rows": int(len(index)),
                    "runs": [Path(r["dir"]).name for r in chosen],
                    "dev_" + task.score: [round(r["metrics"][task.score], 4) for r in chosen],
                }
            )
    return files, manifest


def _checked(pred: dict[str, np.ndarray], task: Task, path: Path) -> dict[str, np.ndarray]:
    """Stored test predictions as `electra finetune` writes them: an index and a row of outputs for each entry."""
    index, outputs = pred.get("index"), pred.get("outputs")
    shaped = index is not None and outputs is not None and index.ndim == 1
    if not shaped or outputs.shape != (len(index), task.num_outputs) or not np.issubdtype(outputs.dtype, np.number):
        expected = f"an 'index' and 'outputs' of {task.num_outputs} number(s) per row"
        raise ElectraError(f"{path}: expected {expected}, as `electra finetune` writes them")
    return pred


def write_zip(path: str | Path, files: dict[str, str]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in SERVER_FILES:
            if name in files:
                zf.writestr(name, files[name])
    write_bytes(path, buf.getvalue())
