"""What the report reads, without torch: pretraining runs and finetuning sweeps found under the paths given."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from electra.errors import ElectraError

STATS = ("median", "mean", "max")  # what a GLUE cell can show (the official README reports medians)


LOSS_KEYS = ("loss", "gen_loss", "disc_loss")


LOSS_TITLES = {"loss": "loss = gen + 50 · disc", "gen_loss": "generator MLM loss", "disc_loss": "discriminator loss"}


@dataclass
class PretrainRun:
    path: Path
    name: str
    config: dict[str, Any]  # the run's config.json ("config": PretrainConfig fields, "run", "data")
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]

    @property
    def last_step(self) -> int:
        return max((r["step"] for r in self.train + self.eval), default=0)


@dataclass
class Sweep:
    path: Path
    name: str
    results: dict[str, Any]  # electra.finetune.results.aggregate()
    model: str = ""
    per_task: dict[str, Any] = field(default_factory=dict)  # GLUE tasks
    own_tasks: dict[str, Any] = field(default_factory=dict)  # your own data (electra.finetune.own)


def is_pretrain_run(path: Path) -> bool:
    return (path / "metrics.jsonl").is_file()


def is_sweep(path: Path) -> bool:
    return (path / "results.json").is_file() or any(path.glob("*/run_*/metrics.json"))


def _records(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl: JSON objects of numbers (and a `split` name), each with its `step`."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ElectraError(
            f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); expected a metrics.jsonl"
        ) from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):  # a line being written by a live run
                break
            raise ElectraError(f"{path}:{n}: not a JSON object") from None
        if not _is_record(record):
            raise ElectraError(
                f"{path}:{n}: expected a JSON object of numbers with a 'step' (and a 'split' name), as a run logs"
            )
        records.append(record)
    return records


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_record(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("step"), int)
        and _number(record["step"])
        and isinstance(record.get("split", ""), str)
        and all(_number(v) or v is None for k, v in record.items() if k != "split")
    )


def _run_config(path: Path) -> dict[str, Any]:
    """A run's config.json, for what the report shows of it (its shape checked, not every value)."""
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ElectraError(f"{path} is not valid JSON ({err})") from None
    cfg = config.get("config", {}) if isinstance(config, dict) else None
    ints = ("max_steps", "batch_size", "max_length", "hidden_size", "num_hidden_layers")
    shaped = (
        isinstance(cfg, dict)
        and isinstance(cfg.get("model", {}), dict)
        and isinstance(config.get("run", {}), dict)
        and all(isinstance(v, int) for k, v in {**cfg, **cfg.get("model", {})}.items() if k in ints and v is not None)
        and isinstance(cfg.get("adam_epsilon", 0.0), int | float | None)
    )
    if not shaped:
        raise ElectraError(f"{path} is not a pretraining run's config.json (its 'config' or 'run' has the wrong shape)")
    return config


def _by_step(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per step (the last one written wins: a restarted run rewrites its steps), sorted."""
    return sorted({r["step"]: r for r in records if "step" in r}.values(), key=lambda r: r["step"])


def load_pretrain_run(path: Path, name: str) -> PretrainRun:
    records = _records(path / "metrics.jsonl")
    config = _run_config(path / "config.json") if (path / "config.json").is_file() else {}
    train = _by_step([r for r in records if r.get("split", "train") == "train"])
    evals = _by_step([r for r in records if r.get("split") == "eval"])
    return PretrainRun(path, name, config, train, evals)


def load_sweep(path: Path, name: str) -> Sweep:
    from electra.finetune.results import aggregate

    if any(path.glob("*/run_*/metrics.json")):
        results = aggregate(path)  # from the runs themselves: includes runs finished after results.json
    else:
        try:
            results = json.loads((path / "results.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ElectraError(f"{path / 'results.json'} is not valid JSON ({err})") from None
        if not _is_results(results):
            raise ElectraError(f"{path / 'results.json'} is not the results.json of a finetuning sweep")
    model = ""
    for config_file in sorted(path.glob("*/run_*/config.json"))[:1]:
        try:
            config = json.loads(config_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ElectraError(f"{config_file} is not valid JSON ({err})") from None
        model = str(config.get("model", "")) if isinstance(config, dict) else ""
    tasks = results.get("tasks", {})
    glue = {n: t for n, t in tasks.items() if t.get("glue", True)}
    return Sweep(path, name, results, model, glue, {n: t for n, t in tasks.items() if n not in glue})


def _is_results(results: Any) -> bool:
    """The shape of a sweep's results.json (`electra.finetune.results.aggregate`), as far as the report reads it."""
    stat = lambda x: isinstance(x, dict) and all(map(_number, x.values())) and {*STATS, "std"} <= x.keys()
    numbers = lambda x: isinstance(x, dict) and all(map(_number, x.values()))
    tasks = results.get("tasks") if isinstance(results, dict) else None
    return isinstance(tasks, dict) and all(
        isinstance(t, dict)
        and isinstance(t.get("metrics"), dict)
        and all(map(stat, t["metrics"].values()))
        and t.get("score") in t["metrics"]
        and isinstance(t.get("n_runs"), int)
        and isinstance(t.get("display", ""), str)
        and (t.get("majority") is None or numbers(t["majority"]))
        and (t.get("dev_auc") is None or stat(t["dev_auc"]))
        and (t.get("dev_auc_chance_band") is None or _number(t["dev_auc_chance_band"]))
        for t in tasks.values()
    )


def discover(paths: list[str | os.PathLike]) -> tuple[list[PretrainRun], list[Sweep]]:
    """Pretraining runs and sweeps named by `paths` (or found directly inside them), in the order given."""
    found: list[tuple[str, Path]] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise ElectraError(f"{p} is not a directory")
        if is_pretrain_run(p):
            found.append(("run", p))
        elif is_sweep(p):
            found.append(("sweep", p))
        else:
            inside = [
                ("run", c) if is_pretrain_run(c) else ("sweep", c)
                for c in sorted(p.iterdir())
                if c.is_dir() and (is_pretrain_run(c) or is_sweep(c))
            ]
            if not inside:
                raise ElectraError(
                    f"{p} is neither a pretraining run (no metrics.jsonl) nor a finetuning sweep (no "
                    "results.json or <task>/run_<seed>/metrics.json), and holds none"
                )
            found += inside
    names = _unique_names([p for _, p in found])
    runs = [load_pretrain_run(p, names[p]) for kind, p in found if kind == "run"]
    sweeps = [load_sweep(p, names[p]) for kind, p in found if kind == "sweep"]
    return runs, sweeps


def _unique_names(paths: list[Path]) -> dict[Path, str]:
    """The shortest path suffix that tells each directory apart."""
    names: dict[Path, str] = {}
    for p in paths:
        parts = p.resolve().parts
        for k in range(1, len(parts) + 1):
            candidate = "/".join(parts[-k:])
            if sum(1 for q in paths if "/".join(q.resolve().parts[-k:]) == candidate) == 1:
                break
        names[p] = candidate
    return names


def fmt_number(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


PROBE_KEYS = ("probe_cls", "probe_mean", "probe_random_cls", "probe_random_mean", "probe_majority")
