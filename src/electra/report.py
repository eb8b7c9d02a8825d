"""`electra report PATH ... --out DIR`: tables and plots over pretraining runs and GLUE finetuning sweeps.

A PATH is a pretraining run directory (it has `metrics.jsonl`), a finetuning sweep (`results.json` or
`<task>/run_<seed>/metrics.json`), or a directory holding such directories side by side. DIR receives:

    index.md                 the tables below and the plots, in reading order
    report.json              every number of the tables
    pretrain_loss.png        loss, generator MLM loss, discriminator loss over steps (train; held-out as dots)
    pretrain_accuracy.png    generator and discriminator accuracy (train and held-out), held-out AUC, precision,
                             recall
    pretrain_probe.png       the linear probe at each evaluation, with its random-weights and majority lines
    glue.png                 per-task dev score of each sweep, error bars = std over finetuning runs

The report opens with findings in words: the discriminator's regime, the probe against random weights, runs that
predicted one class, each sweep against the majority class and against a `random:<preset>` sweep.

Tables (shaped like richarddwang/electra_pytorch's README): 1. GLUE dev per task, one row per sweep, with the
number of runs behind each cell; 2. the run statistics of every task (median, mean, std, max, min); 3. the
finetuning standard deviation per task; with two or more sweeps (e.g. one per pretraining seed) 4. pretraining
stability: mean, std, max and min of the sweeps' GLUE averages, and 5. the standard deviation of each task over
sweeps; and a summary of each pretraining run. Standard deviations are sample standard deviations (ddof = 1).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from electra.errors import ElectraError
from electra.io import save_figure, write_text

STATS = ("median", "mean", "max")  # what a GLUE cell can show (the official README reports medians)
LOSS_KEYS = ("loss", "gen_loss", "disc_loss")
LOSS_TITLES = {"loss": "loss = gen + 50 · disc", "gen_loss": "generator MLM loss", "disc_loss": "discriminator loss"}


# ---------------------------------------------------------------------------------------------- inputs


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
    results: dict[str, Any]  # electra.glue.results.aggregate()
    model: str = ""
    per_task: dict[str, Any] = field(default_factory=dict)


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
    from electra.glue.results import aggregate

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
    return Sweep(path, name, results, model, results.get("tasks", {}))


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
            inside = [("run", c) if is_pretrain_run(c) else ("sweep", c) for c in sorted(p.iterdir())
                      if c.is_dir() and (is_pretrain_run(c) or is_sweep(c))]  # fmt: skip
            if not inside:
                raise ElectraError(f"{p} is neither a pretraining run (no metrics.jsonl) nor a finetuning sweep (no "
                                   "results.json or <task>/run_<seed>/metrics.json), and holds none")  # fmt: skip
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


# ---------------------------------------------------------------------------------------------- statistics


def summarize(values: list[float]) -> dict[str, float]:
    """n, mean, sample std (ddof 1; 0 for one value), max, min."""
    a = np.asarray(values, dtype=np.float64)
    return {"n": len(a), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "max": float(a.max()), "min": float(a.min())}  # fmt: skip


def task_score(sweep: Sweep, task: str, stat: str) -> float | None:
    t = sweep.per_task.get(task)
    return None if t is None else t["metrics"][t["score"]][stat]


def glue_average(sweep: Sweep, tasks: list[str], stat: str) -> float | None:
    scores = [task_score(sweep, t, stat) for t in tasks]
    return None if not tasks or any(s is None for s in scores) else float(np.mean(scores))


def stability(sweeps: list[Sweep], stat: str) -> dict[str, Any] | None:
    """Pretraining stability over sweeps: statistics of their GLUE averages over the tasks all of them have."""
    from electra.glue.results import glue_label
    from electra.glue.tasks import AVERAGE_TASKS

    if len(sweeps) < 2:
        return None
    common = [t for t in AVERAGE_TASKS if all(t in s.per_task for s in sweeps)]
    if not common:
        return None
    averages = {s.name: glue_average(s, common, stat) for s in sweeps}
    per_task = {t: summarize([task_score(s, t, stat) for s in sweeps]) for t in common}
    return {"label": glue_label(common), "tasks": common, "stat": stat, "averages": averages,
            "summary": summarize(list(averages.values())), "per_task": per_task}  # fmt: skip


def build_report(runs: list[PretrainRun], sweeps: list[Sweep], stat: str = "median") -> dict[str, Any]:
    """Every number the tables show."""
    from electra.glue.results import glue_label
    from electra.glue.tasks import AVERAGE_TASKS

    glue = []
    for s in sweeps:
        covered = [t for t in AVERAGE_TASKS if t in s.per_task]
        glue.append({
            "name": s.name, "path": str(s.path), "model": s.model, "label": glue_label(covered), "tasks": covered,
            "average": glue_average(s, covered, stat),
            "scores": {t: task_score(s, t, stat) for t in s.per_task},
            "std": {t: v["metrics"][v["score"]]["std"] for t, v in s.per_task.items()},
            "runs": {t: v["n_runs"] for t, v in s.per_task.items()},
            "metrics": {t: v["metrics"] for t, v in s.per_task.items()},
        })  # fmt: skip
    pretrain = []
    for r in runs:
        cfg = r.config.get("config", {})
        model = cfg.get("model", {})
        last = r.train[-1] if r.train else {}
        last_eval = r.eval[-1] if r.eval else {}
        pretrain.append({
            "name": r.name, "path": str(r.path), "step": r.last_step, "max_steps": cfg.get("max_steps"),
            "hidden_size": model.get("hidden_size"), "layers": model.get("num_hidden_layers"),
            "batch_size": cfg.get("batch_size"), "max_length": cfg.get("max_length"),
            "train": {k: last.get(k) for k in ("loss", "gen_loss", "disc_loss", "gen_accuracy", "disc_accuracy")},
            "eval": {k: last_eval.get(k) for k in ("step", "gen_loss", "gen_accuracy", "disc_loss", "disc_accuracy",
                                                   "disc_auc", "disc_precision", "disc_recall", "replaced_fraction",
                                                   *PROBE_KEYS)},
            "probe_set": r.config.get("run", {}).get("probe"),
        })  # fmt: skip
    report = {"stat": stat, "glue": glue, "stability": stability(sweeps, stat), "pretrain": pretrain}
    report["findings"] = findings(report, sweeps)
    return report


PROBE_KEYS = ("probe_cls", "probe_mean", "probe_random_cls", "probe_random_mean", "probe_majority")


def _majority_average(sweep: Sweep, tasks: list[str]) -> float | None:
    """The GLUE average of always predicting each task's majority class (None if a task lacks the record)."""
    from electra.glue.tasks import TASKS

    scores = [(sweep.per_task[t].get("majority") or {}).get(TASKS[t].score) for t in tasks]
    return float(np.mean(scores)) if scores and all(x is not None for x in scores) else None


def findings(report: dict[str, Any], sweeps: list[Sweep]) -> list[str]:
    """What the numbers mean, in words: the regime the discriminator is in, the probe against random weights,
    finetuning runs that learnt nothing, and each sweep against random initialisation and the majority class."""
    out = []
    for r in report["pretrain"]:
        e = r["eval"]
        baseline = 1 - e["replaced_fraction"] if e.get("replaced_fraction") is not None else None
        if e.get("disc_recall") is not None and e["disc_recall"] < 0.02:
            out.append(f"**{r['name']}**: the discriminator still calls almost every token original (held-out "
                       f"recall {100 * e['disc_recall']:.1f} %, AUC {_fmt(e.get('disc_auc'), 3)}). This is ELECTRA's "
                       "early regime, not necessarily a bug: with so few steps its features are not expected to "
                       "beat random weights (docs/pretraining.md).")  # fmt: skip
        elif baseline is not None and e.get("disc_accuracy") is not None and e["disc_accuracy"] <= baseline:
            out.append(f"**{r['name']}**: the discriminator's held-out accuracy {e['disc_accuracy']:.4f} is not above "
                       f"calling every token original ({baseline:.4f}; recall {100 * e['disc_recall']:.1f} %, AUC "
                       f"{_fmt(e.get('disc_auc'), 3)}): ELECTRA's early regime, where its features are not expected "
                       "to beat random weights (docs/pretraining.md).")  # fmt: skip
        if e.get("probe_cls") is not None and e.get("probe_random_cls") is not None:
            best, base = max(e["probe_cls"], e["probe_mean"]), max(e["probe_random_cls"], e["probe_random_mean"])
            # (the probe's test set has a few hundred examples: a point or so either way is noise)
            verdict = "above" if best > base + 0.01 else "below" if best < base - 0.01 else "level with"
            out.append(f"**{r['name']}**: linear probe ({r['probe_set']}) at step {e['step']}: [CLS] "
                       f"{e['probe_cls']:.3f}, mean-pooled {e['probe_mean']:.3f}; the same probe on random weights "
                       f"{e['probe_random_cls']:.3f} / {e['probe_random_mean']:.3f}, majority class "
                       f"{e['probe_majority']:.3f}: the pretrained features are {verdict} random ones.")  # fmt: skip
    from electra.glue.tasks import TASKS

    random_sweeps = [g for g in report["glue"] if g["model"].startswith("random:")]
    for g, sweep in zip(report["glue"], sweeps, strict=True):
        constant = [f"{TASKS[t].display} ({v['constant_runs']} of {v['n_runs']})"
                    for t, v in sweep.per_task.items() if v.get("constant_runs")]  # fmt: skip
        if constant:
            out.append(f"**{g['name']}**: runs that predict one class (or one value) for every dev example learnt "
                       f"nothing beyond the label prior: {', '.join(constant)}.")  # fmt: skip
        majority = _majority_average(sweep, g["tasks"])
        if g["average"] is not None and majority is not None:
            out.append(f"**{g['name']}**: {g['label']} {g['average']:.2f} against {majority:.2f} for always "
                       "predicting the majority class.")  # fmt: skip
        if g["average"] is not None and not g["model"].startswith("random:"):
            for base in random_sweeps:
                if base["tasks"] == g["tasks"] and base["average"] is not None:
                    diff = g["average"] - base["average"]
                    word = "better" if diff > 0 else "worse"
                    out.append(
                        f"**{g['name']}** is {word} than random initialisation ({base['name']}): "
                        f"{g['label']} {g['average']:.2f} against {base['average']:.2f} ({diff:+.2f})."
                    )
    return out


# ---------------------------------------------------------------------------------------------- markdown


def _fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _columns(report: dict[str, Any]) -> list[str]:
    from electra.glue.tasks import AVERAGE_TASKS, TASKS

    present = {t for g in report["glue"] for t in g["scores"]}
    return [t for t in TASKS if t in AVERAGE_TASKS or t in present]


def markdown(report: dict[str, Any], images: list[str]) -> str:
    from electra.glue.tasks import TASKS

    stat = report["stat"]
    out = ["# ELECTRA report", ""]
    if report.get("findings"):
        out += ["## Findings", ""] + [f"- {f}" for f in report["findings"]] + [""]
    columns = _columns(report)
    heads = [TASKS[t].display for t in columns]
    metrics_row = [TASKS[t].score.replace("mcc", "MCC").replace("acc", "Acc").replace("spearman", "Spearman")
                   for t in columns]  # fmt: skip
    n = 0
    if report["glue"]:
        n += 1
        out += [
            f"## Table {n}: GLUE dev results ({stat} over finetuning runs)",
            "",
            _row(["Model", *heads, "Avg."]),
            "|" + "---|" * (len(heads) + 2),
            _row(["Metrics", *metrics_row, ""]),
        ]
        for g in report["glue"]:
            cells = [_fmt(g["scores"].get(t)) for t in columns]
            label = g["label"].replace(" (no ", ", no ").rstrip(")")  # GLUE-5 (no QQP) -> GLUE-5, no QQP
            out.append(_row([g["name"], *cells, f"{_fmt(g['average'])} ({label})"]))
        out.append(_row(["runs", *["/".join(str(g["runs"].get(t, 0)) for g in report["glue"]) for t in columns], ""]))
        out += [
            "",
            "Each cell is the task's score metric (the official README's choice); `runs` gives the number "
            "of finetuning runs behind each cell (one number per row above). `GLUE-k (no X)` averages only "
            "the tasks present; it is not the 8-task GLUE average.",
            "",
        ]
        n += 1
        out += [
            f"## Table {n}: run statistics per task",
            "",
            _row(["Model", "task", "metric", "runs", "median", "mean", "std", "max", "min"]),
            "|" + "---|" * 9,
        ]
        for g in report["glue"]:
            for t in [c for c in columns if c in g["metrics"]]:
                for metric, s in g["metrics"][t].items():
                    out.append(_row([g["name"], TASKS[t].display, metric, str(s["n"]),
                                     *(_fmt(s[k]) for k in ("median", "mean", "std", "max", "min"))]))  # fmt: skip
        out.append("")
        n += 1
        out += [
            f"## Table {n}: standard deviation of finetuning runs (same pretrained model, different seeds)",
            "",
            _row(["Model", *heads]),
            "|" + "---|" * (len(heads) + 1),
            _row(["Metrics", *metrics_row]),
        ]
        for g in report["glue"]:
            out.append(_row([g["name"], *[_fmt(g["std"].get(t)) for t in columns]]))
        out.append("")
    st = report["stability"]
    if st is not None:
        s = st["summary"]
        n += 1
        out += [
            f"## Table {n}: pretraining stability over {s['n']} sweeps ({st['label']} average of each sweep's {stat})",
            "",
            _row(["", "Mean", "Std", "Max", "Min"]),
            "|---|---|---|---|---|",
            _row([st["label"], *(_fmt(s[k]) for k in ("mean", "std", "max", "min"))]),
            "",
        ]
        out += [_row(["Sweep", f"{st['label']} avg."]), "|---|---|"]
        out += [_row([name, _fmt(v)]) for name, v in st["averages"].items()] + [""]
        n += 1
        task_heads = [TASKS[t].display for t in st["tasks"]]
        out += [
            f"## Table {n}: standard deviation of each task over the {s['n']} sweeps",
            "",
            _row(["", *task_heads]),
            "|" + "---|" * (len(task_heads) + 1),
            _row(["Std", *(_fmt(st["per_task"][t]["std"]) for t in st["tasks"])]),
            "",
        ]
    if report["pretrain"]:
        out += ["## Pretraining runs", "",
                _row(["Run", "steps", "H / layers", "batch × length", "loss", "gen loss", "disc loss",
                      "held-out gen acc", "held-out disc acc", "held-out disc AUC"]), "|" + "---|" * 10]  # fmt: skip
        for r in report["pretrain"]:
            steps = f"{r['step']}/{r['max_steps']}" if r["max_steps"] else str(r["step"])
            e, t = r["eval"], r["train"]
            out.append(_row([r["name"], steps, f"{r['hidden_size']} / {r['layers']}",
                             f"{r['batch_size']} × {r['max_length']}", _fmt(t["loss"], 3), _fmt(t["gen_loss"], 3),
                             _fmt(t["disc_loss"], 4), _fmt(e["gen_accuracy"], 4), _fmt(e["disc_accuracy"], 4),
                             _fmt(e["disc_auc"], 4)]))  # fmt: skip
        out += ["", "Train values are the last logged step's; held-out values the last evaluation's.", ""]
        probed = [r for r in report["pretrain"] if r["eval"].get("probe_cls") is not None]
        if probed:
            out += ["### Linear probe on frozen features (test accuracy)", "",
                    _row(["Run", "probe set", "step", "[CLS]", "mean-pooled", "random [CLS]", "random mean-pooled",
                          "majority class"]), "|" + "---|" * 8]  # fmt: skip
            for r in probed:
                e = r["eval"]
                out.append(_row([r["name"], str(r["probe_set"]), str(e["step"]),
                                 *(_fmt(e[k], 3) for k in PROBE_KEYS)]))  # fmt: skip
            out += [
                "",
                "A logistic regression on the final layer's [CLS] state or its mean over tokens; *random* is "
                "the same probe on the randomly initialised encoder of the same shape: the line to beat.",
                "",
            ]
    if images:
        out += ["## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images] + [""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- plots


def _figure(nrows: int, ncols: int, width: float, height: float):
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend state

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def plot_losses(runs: list[PretrainRun], path: Path) -> None:
    fig, axes = _figure(1, 3, 15, 4)
    for ax, key in zip(axes[0], LOSS_KEYS, strict=True):
        for i, r in enumerate(runs):
            color = f"C{i % 10}"
            xs = [x["step"] for x in r.train if x.get(key) is not None]
            ax.plot(xs, [x[key] for x in r.train if x.get(key) is not None], color=color, lw=1, label=r.name)
            ev = [x for x in r.eval if x.get(key) is not None]
            if ev:
                ax.plot([x["step"] for x in ev], [x[key] for x in ev], "o--", color=color, ms=4, lw=0.8,
                        label=f"{r.name} (held-out)")  # fmt: skip
        ax.set_title(LOSS_TITLES[key])
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    save_figure(fig, path)


def plot_accuracy(runs: list[PretrainRun], path: Path) -> None:
    fig, axes = _figure(1, 3, 15, 4)
    panels = [("generator accuracy at masked positions", "gen_accuracy"),
              ("discriminator accuracy (all real tokens)", "disc_accuracy")]  # fmt: skip
    for ax, (title, key) in zip(axes[0][:2], panels, strict=True):
        for i, r in enumerate(runs):
            color = f"C{i % 10}"
            tr = [x for x in r.train if x.get(key) is not None]
            ax.plot([x["step"] for x in tr], [x[key] for x in tr], color=color, lw=1, label=f"{r.name} (train)")
            ev = [x for x in r.eval if x.get(key) is not None]
            if ev:
                ax.plot([x["step"] for x in ev], [x[key] for x in ev], "o--", color=color, ms=4, lw=0.8,
                        label=f"{r.name} (held-out)")  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    ax = axes[0][2]
    styles = {"disc_auc": "o-", "disc_precision": "s--", "disc_recall": "^:"}
    for i, r in enumerate(runs):
        for key, style in styles.items():
            ev = [x for x in r.eval if x.get(key) is not None]
            if ev:
                ax.plot([x["step"] for x in ev], [x[key] for x in ev], style, color=f"C{i % 10}", ms=4, lw=1,
                        label=f"{r.name} {key.removeprefix('disc_')}")  # fmt: skip
    ax.set_title("held-out discriminator AUC / precision / recall")
    ax.set_xlabel("step")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    for a in axes[0]:
        if a.has_data():
            a.legend(fontsize=7)
    save_figure(fig, path)


def plot_probe(runs: list[PretrainRun], path: Path) -> None:
    """Probe accuracy over evaluations, with the random-initialisation and majority-class levels as lines."""
    fig, axes = _figure(1, 2, 11, 4)
    for ax, (kind, title) in zip(axes[0], (("cls", "[CLS] state"), ("mean", "mean-pooled states")), strict=True):
        for i, r in enumerate(runs):
            ev = [x for x in r.eval if x.get(f"probe_{kind}") is not None]
            if not ev:
                continue
            color = f"C{i % 10}"
            steps = [x["step"] for x in ev]
            ax.plot(steps, [x[f"probe_{kind}"] for x in ev], "o-", color=color, ms=4, lw=1, label=r.name)
            ax.axhline(ev[-1][f"probe_random_{kind}"], color=color, ls="--", lw=1,
                       label=f"{r.name}: random initialisation")  # fmt: skip
            ax.axhline(ev[-1]["probe_majority"], color="grey", ls=":", lw=1, label="majority class")
        ax.set_title(f"linear probe on the {title}")
        ax.set_xlabel("step")
        ax.set_ylabel("probe test accuracy")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_glue(report: dict[str, Any], path: Path) -> None:
    from electra.glue.tasks import TASKS

    columns = [t for t in _columns(report) if any(t in g["scores"] for g in report["glue"])]
    k = len(report["glue"])
    width = 0.8 / max(k, 1)
    fig, axes = _figure(1, 1, max(6.0, 1.1 * len(columns) + 2), 4.5)
    ax = axes[0][0]
    x = np.arange(len(columns))
    for i, g in enumerate(report["glue"]):
        heights = [g["scores"].get(t, np.nan) for t in columns]
        errors = [g["std"].get(t, 0.0) for t in columns]
        pos = x - 0.4 + width * (i + 0.5)
        avg = f", {g['label']} {g['average']:.1f}" if g["average"] is not None else ""
        ax.bar(pos, heights, width, yerr=errors, capsize=3, color=f"C{i % 10}", label=f"{g['name']}{avg}")
        for px, h, err in zip(pos, heights, errors, strict=True):
            if not np.isnan(h):  # the value above its error bar
                ax.annotate(f"{h:.1f}", (px, max(h, 0) + err), ha="center", va="bottom", fontsize=7,
                            xytext=(0, 2), textcoords="offset points")  # fmt: skip
    ax.set_xticks(x, [f"{TASKS[t].display}\n({TASKS[t].score})" for t in columns])
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel(f"dev score ({report['stat']} over runs; error bar: std)")
    ax.set_title("GLUE dev results per task")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


# ---------------------------------------------------------------------------------------------- entry points


def write_report(paths: list[str | os.PathLike], out: str | os.PathLike, stat: str = "median") -> str:
    """Write DIR/index.md, DIR/report.json and the PNGs; return the markdown."""
    if stat not in STATS:
        raise ElectraError(f"--stat must be one of {', '.join(STATS)}, got {stat!r}")
    runs, sweeps = discover(paths)
    report = build_report(runs, sweeps, stat)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ElectraError(f"--out {out} is a file; expected a directory")
    out.mkdir(parents=True, exist_ok=True)
    images = []
    if any(r.train or r.eval for r in runs):
        plot_losses(runs, out / "pretrain_loss.png")
        plot_accuracy(runs, out / "pretrain_accuracy.png")
        images += ["pretrain_loss.png", "pretrain_accuracy.png"]
    if any(x.get("probe_cls") is not None for r in runs for x in r.eval):
        plot_probe(runs, out / "pretrain_probe.png")
        images.append("pretrain_probe.png")
    if any(g["scores"] for g in report["glue"]):
        plot_glue(report, out / "glue.png")
        images.append("glue.png")
    text = markdown(report, images)
    write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    write_text(out / "index.md", text)
    return text


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="pretraining run directories, finetuning sweep directories (electra finetune --out), "
                             "or directories that hold them")  # fmt: skip
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder (index.md, report.json, PNGs)")
    parser.add_argument("--stat", choices=STATS, default="median",
                        help="statistic over finetuning runs shown per task and averaged (default: median, as the "
                             "official README)")  # fmt: skip


def run_report(args: argparse.Namespace) -> int:
    text = write_report(args.paths, args.out, args.stat)
    print(text)
    print(f"report written to {Path(args.out) / 'index.md'}")
    return 0
