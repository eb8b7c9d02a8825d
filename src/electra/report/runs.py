"""What the report reads: pretraining runs (config.json, metrics.jsonl) and finetuning sweeps (results.json or
run metrics), found under the paths given. Reading them imports no torch."""

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
    records = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):  # a line being written by a live run
                break
            raise ElectraError(f"{path}:{n}: not a JSON object") from None
    return records


def _by_step(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per step (the last one written wins: a restarted run rewrites its steps), sorted."""
    return sorted({r["step"]: r for r in records if "step" in r}.values(), key=lambda r: r["step"])


def load_pretrain_run(path: Path, name: str) -> PretrainRun:
    records = _records(path / "metrics.jsonl")
    config = {}
    if (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text())
        except json.JSONDecodeError as err:
            raise ElectraError(f"{path / 'config.json'} is not valid JSON ({err})") from None
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
        except json.JSONDecodeError as err:
            raise ElectraError(f"{path / 'results.json'} is not valid JSON ({err})") from None
    model = ""
    for config_file in sorted(path.glob("*/run_*/config.json"))[:1]:
        model = str(json.loads(config_file.read_text()).get("model", ""))
    tasks = results.get("tasks", {})
    glue = {n: t for n, t in tasks.items() if t.get("glue", True)}
    return Sweep(path, name, results, model, glue, {n: t for n, t in tasks.items() if n not in glue})


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
