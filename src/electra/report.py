"""`electra report PATH ... --out DIR`: tables and plots over pretraining runs and GLUE finetuning sweeps.

A PATH is a pretraining run directory (it has `metrics.jsonl`), a finetuning sweep (`results.json` or
`<task>/run_<seed>/metrics.json`), or a directory holding such directories side by side. DIR receives:

    index.md                 the tables below and the plots, in reading order
    report.json              every number of the tables
    pretrain_loss.png        loss, generator MLM loss, discriminator loss over steps (train; held-out as dots)
    pretrain_accuracy.png    generator and discriminator accuracy (train and held-out), held-out AUC, precision,
                             recall
    pretrain_probe.png       the linear probe at each evaluation, with its random-weights and majority lines and
                             the band around random weights that the findings call level
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
from electra.io import write_text

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
    per_task: dict[str, Any] = field(default_factory=dict)  # GLUE tasks
    own_tasks: dict[str, Any] = field(default_factory=dict)  # your own data (electra.glue.own)


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
    from electra.glue.results import aggregate

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
    """The shape of a sweep's results.json (`electra.glue.results.aggregate`), as far as the report reads it."""
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


# ---------------------------------------------------------------------------------------------- statistics


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
    from electra.glue.results import glue_label
    from electra.glue.tasks import AVERAGE_TASKS

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


def build_report(runs: list[PretrainRun], sweeps: list[Sweep], stat: str = "median") -> dict[str, Any]:
    """Every number the tables show."""
    from electra.glue.results import at_chance, glue_label
    from electra.glue.tasks import AVERAGE_TASKS

    glue = []
    for s in sweeps:
        covered = [t for t in AVERAGE_TASKS if t in s.per_task]
        glue.append(
            {
                "name": s.name,
                "path": str(s.path),
                "model": s.model,
                "label": glue_label(covered),
                "tasks": covered,
                "average": glue_average(s, covered, stat),
                "scores": {t: task_score(s, t, stat) for t in s.per_task},
                "std": {t: v["metrics"][v["score"]]["std"] for t, v in s.per_task.items()},
                "runs": {t: v["n_runs"] for t, v in s.per_task.items()},
                # the score of always predicting the train set's majority class (mean score for STS-B)
                "majority": {t: v["majority"][v["score"]] for t, v in s.per_task.items() if v.get("majority")},
                # tasks whose runs rank the dev examples no better than chance (median dev ROC AUC in its band)
                "at_chance": [t for t, v in s.per_task.items() if at_chance(v)],
                "metrics": {t: v["metrics"] for t, v in s.per_task.items()},
                "own": {t: {"display": v["display"], "metrics": v["metrics"]} for t, v in s.own_tasks.items()},
            }
        )
    pretrain = []
    for r in runs:
        cfg = r.config.get("config", {})
        model = cfg.get("model", {})
        last = r.train[-1] if r.train else {}
        last_eval = r.eval[-1] if r.eval else {}
        pretrain.append(
            {
                "name": r.name,
                "path": str(r.path),
                "step": r.last_step,
                "max_steps": cfg.get("max_steps"),
                "hidden_size": model.get("hidden_size"),
                "layers": model.get("num_hidden_layers"),
                "batch_size": cfg.get("batch_size"),
                "max_length": cfg.get("max_length"),
                "adam_epsilon": cfg.get("adam_epsilon"),
                "freeze_word_embeddings": bool(cfg.get("freeze_word_embeddings")),
                "train": {k: last.get(k) for k in ("loss", "gen_loss", "disc_loss", "gen_accuracy", "disc_accuracy")},
                "eval": {
                    k: last_eval.get(k)
                    for k in (
                        "step",
                        "gen_loss",
                        "gen_loss_unigram",
                        "gen_accuracy",
                        "disc_loss",
                        "disc_accuracy",
                        "disc_auc",
                        "disc_auc_unigram",
                        "disc_precision",
                        "disc_recall",
                        "replaced_fraction",
                        *PROBE_KEYS,
                        "probe_test_examples",
                    )
                },
                "probe_set": r.config.get("run", {}).get("probe"),
                "disc_auc_peak": _auc_peak(r.eval),
                "weights_moved": _weights_moved(r.path),
            }
        )
    report = {"stat": stat, "glue": glue, "stability": stability(sweeps, stat), "pretrain": pretrain}
    report["findings"] = findings(report, sweeps)
    return report


def _auc_peak(evals: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The evaluation with the highest discriminator AUC, with word rarity's AUC there (None if never logged)."""
    pts = [x for x in evals if x.get("disc_auc") is not None and x.get("disc_auc_unigram") is not None]
    if not pts:
        return None
    peak = max(pts, key=lambda x: x["disc_auc"])
    return {k: peak[k] for k in ("step", "disc_auc", "disc_auc_unigram")}


FREQUENCY_MARGIN = 0.02  # discriminator AUC within this of word rarity's: nothing learnt beyond word frequency


def _against_baseline(
    name: str, last: dict[str, Any], key: str, measured: str, alone: str
) -> tuple[float, float, str] | None:
    """`last[key]`, its frequency-only baseline `last[key + "_unigram"]` and a sentence opening that states both;
    None unless both were logged and are finite."""
    value, baseline = last.get(key), last.get(f"{key}_unigram")
    if value is None or baseline is None or not (math.isfinite(value) and math.isfinite(baseline)):
        return None
    opening = f"**{name}**: held-out {measured} {value:.3f} at step {last['step']}; {alone} gives {baseline:.3f}"
    return value, baseline, opening


def frequency_finding(name: str, last: dict[str, Any], peak: dict[str, Any] | None) -> str | None:
    """The discriminator's held-out AUC against the AUC of scoring each token by its rarity alone: early in
    pretraining an untrained generator replaces words with rare ones, which frequency alone gives away; as it learns
    which words are frequent this shortcut closes, and an AUC that falls with it is that, not a fault."""
    rarity = "scoring each token by its rarity in the training data alone"
    if (found := _against_baseline(name, last, "disc_auc", "discriminator AUC", rarity)) is None:
        return None
    auc, unigram, text = found
    margin = auc - unigram
    if margin <= -FREQUENCY_MARGIN:
        text += ": the discriminator has not yet learnt even which words are rare, let alone their contexts."
    elif margin < FREQUENCY_MARGIN:
        text += ": the discriminator detects replacements by word frequency, not yet from context."
    else:
        text += f"; the {margin:.3f} above that is what the discriminator reads from context."
    if (
        peak is not None
        and peak["step"] != last["step"]
        and peak["disc_auc"] - auc >= FREQUENCY_MARGIN
        and peak["disc_auc_unigram"] - unigram >= FREQUENCY_MARGIN
    ):
        text += (
            f" Its AUC fell from {peak['disc_auc']:.3f} at step {peak['step']} while word rarity's fell from "
            f"{peak['disc_auc_unigram']:.3f}: the generator learnt which words are frequent, so its replacements no "
            "longer give themselves away by rarity. That is the shortcut closing, not a fault (docs/pretraining.md)."
        )
    return text


UNIGRAM_NATS = 0.1  # generator loss within this of a unigram model's: it predicts masked words by frequency alone


def generator_finding(name: str, last: dict[str, Any], frozen_table: bool = False) -> str | None:
    """The generator's held-out loss against predicting every masked word by its frequency alone: until it is below
    that, its samples are words drawn by frequency, and the discriminator can only tell them apart by rarity or by
    context it has not been pushed to learn (docs/pretraining.md). With a frozen word table (`tiny`) the generator's
    tied output layer cannot learn, which is why it stays above: said, so that it does not read as a fault."""
    frequency = "predicting every masked word by its frequency in the training data alone"
    if (found := _against_baseline(name, last, "gen_loss", "generator loss", frequency)) is None:
        return None
    loss, unigram, text = found
    if loss >= unigram + UNIGRAM_NATS:
        if frozen_table:
            return text + (
                ": the generator has not learnt which words are frequent, as expected with a frozen word table "
                "(its output layer), so its replacements are near-random words that the discriminator spots "
                'easily (docs/pretraining.md, "Counted words, trained layers").'
            )
        return text + ": the generator has not yet learnt even which words are frequent."
    if loss > unigram - UNIGRAM_NATS:
        return text + (
            ": the generator predicts masked words by their frequency alone, so its replacements are frequent "
            "words drawn at random, not yet words that fit their context."
        )
    return text + f"; the {unigram - loss:.3f} nats below that are what the generator reads from context."


def _weights_moved(path: Path) -> dict[str, float] | None:
    """How far the run's last checkpoint is from its initialisation (None without a readable checkpoint)."""
    from electra.diagnose import run_weight_change

    if not (path / "checkpoints" / "latest").is_dir():
        return None
    try:
        return run_weight_change(path) or None
    except ElectraError:
        return None


def moved_finding(name: str, moved: dict[str, float], adam_epsilon: float | None = None) -> str:
    """How far pretraining moved the discriminator's transformer layers, and what a small value means: with a large
    Adam epsilon (e.g. 1e-2) the layers' small gradients give small steps; otherwise too few steps were taken."""
    layers = [v for k, v in moved.items() if k.startswith("discriminator") and "embeddings" not in k]
    layers = layers or [v for k, v in moved.items() if "embeddings" not in k]  # a masked-LM run's one encoder
    line = (
        f"**{name}**: pretraining moved the transformer layers by {min(layers):.1%}–{max(layers):.1%} of their size "
        f"from the initialisation"
    )
    if max(layers) < 0.1:
        cause = (
            f"Adam's epsilon {adam_epsilon:g} is far above the layers' gradients, so their steps stay small"
            if adam_epsilon is not None and adam_epsilon >= 1e-3
            else "too few steps (or too small a learning rate) to move them"
        )
        line += (
            ": they are hardly trained, so the encoder is close to random weights with trained embeddings — "
            f"{cause} (docs/pretraining.md, item 7), not a fault"
        )
    return line + "."


def fmt_number(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


LEVEL_POINTS = 0.5  # GLUE averages closer than this to random initialisation's are always reported as level

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
            out.append(
                f"**{r['name']}**: the discriminator still calls almost every token original (held-out "
                f"recall {100 * e['disc_recall']:.1f} %, AUC {fmt_number(e.get('disc_auc'), 3)}). This is ELECTRA's "
                "early regime, not necessarily a bug: with so few steps its features are not expected to "
                "beat random weights (docs/pretraining.md)."
            )
        elif baseline is not None and e.get("disc_accuracy") is not None and e["disc_accuracy"] <= baseline:
            out.append(
                f"**{r['name']}**: the discriminator's held-out accuracy {e['disc_accuracy']:.4f} is not above "
                f"calling every token original ({baseline:.4f}; recall {100 * e['disc_recall']:.1f} %, AUC "
                f"{fmt_number(e.get('disc_auc'), 3)}): ELECTRA's early regime, where its features are not expected "
                "to beat random weights (docs/pretraining.md)."
            )
        shortcut = frequency_finding(r["name"], e, r.get("disc_auc_peak"))
        if shortcut:
            out.append(shortcut)
        generator = generator_finding(r["name"], e, r.get("freeze_word_embeddings", False))
        if generator:
            out.append(generator)
        if r.get("weights_moved"):
            out.append(moved_finding(r["name"], r["weights_moved"], r.get("adam_epsilon")))
        if e.get("probe_cls") is not None and e.get("probe_random_cls") is not None:
            best, base = max(e["probe_cls"], e["probe_mean"]), max(e["probe_random_cls"], e["probe_random_mean"])
            n = e.get("probe_test_examples")
            margin = probe_margin(base, n)
            verdict = "above" if best > base + margin else "below" if best < base - margin else "level with"
            out.append(
                f"**{r['name']}**: linear probe ({r['probe_set']}) at step {e['step']}: [CLS] "
                f"{e['probe_cls']:.3f}, mean-pooled {e['probe_mean']:.3f}; the same probe on random weights "
                f"{e['probe_random_cls']:.3f} / {e['probe_random_mean']:.3f}, majority class "
                f"{e['probe_majority']:.3f}: the pretrained features are {verdict} random ones (best of the two "
                f"against best of the two; closer than {margin:.3f} is within the noise of "
                + (f"{n} test examples)." if n else "a few hundred test examples).")
            )
    from electra.glue.results import chance_note
    from electra.glue.tasks import TASKS

    random_sweeps = [g for g in report["glue"] if g["model"].startswith("random:")]
    by_name = {g["name"]: sweep for g, sweep in zip(report["glue"], sweeps, strict=True)}
    for g, sweep in zip(report["glue"], sweeps, strict=True):
        constant = [
            f"{TASKS[t].display} ({v['constant_runs']} of {v['n_runs']})"
            for t, v in sweep.per_task.items()
            if v.get("constant_runs")
        ]
        if constant:
            out.append(
                f"**{g['name']}**: runs that predict one class (or one value) for every dev example learnt "
                f"nothing beyond the label prior: {', '.join(constant)}."
            )
        if (note := chance_note(sweep.per_task)) is not None:
            out.append(f"**{g['name']}**: {note[0].lower()}{note[1:]}")
        majority = _majority_average(sweep, g["tasks"])
        if g["average"] is not None and majority is not None:
            out.append(
                f"**{g['name']}**: {g['label']} {g['average']:.2f} against {majority:.2f} for always "
                "predicting the majority class."
            )
        if g["average"] is not None and not g["model"].startswith("random:"):
            for base in random_sweeps:
                if base["tasks"] == g["tasks"] and base["average"] is not None:
                    out.append(random_verdict(g, sweep, base, by_name[base["name"]]))
    return out


def random_verdict(g: dict[str, Any], sweep: Sweep, base: dict[str, Any], base_sweep: Sweep) -> str:
    """A sweep against random initialisation, in words. Tasks that both sweeps rank at chance (median dev ROC AUC
    inside its chance band) measure no model, only the label prior and noise that the spread of a few finetuning
    seeds underestimates (a run that predicts one class has no spread at all): when some tasks are learnt by either
    sweep, the verdict is made on those, and the full average is given beside it."""
    from electra.glue.results import at_chance
    from electra.glue.tasks import TASKS

    def chance(s: Sweep, t: str) -> bool:
        return t in s.per_task and at_chance(s.per_task[t])

    tasks = g["tasks"]
    noise_only = [t for t in tasks if chance(sweep, t) and chance(base_sweep, t)]
    learnt = [t for t in tasks if t not in noise_only]
    judged = learnt if noise_only and learnt else tasks
    mine = float(np.mean([g["scores"][t] for t in judged])) if judged != tasks else g["average"]
    theirs = float(np.mean([base["scores"][t] for t in judged])) if judged != tasks else base["average"]
    diff = mine - theirs
    band = level_band(sweep, base_sweep, judged)
    word = "level with" if abs(diff) < band else "better than" if diff > 0 else "worse than"
    noise = f"({diff:+.2f}; closer than {band:.2f} is within the noise of the finetuning seeds)"
    if judged == tasks:
        verdict = (
            f"**{g['name']}** is {word} random initialisation ({base['name']}): "
            f"{g['label']} {g['average']:.2f} against {base['average']:.2f} {noise}."
        )
    else:
        names = [TASKS[t].display for t in noise_only]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        are, their, them = ("is", "its", "it") if len(names) == 1 else ("are", "their", "them")
        verdict = (
            f"**{g['name']}** is {word} random initialisation ({base['name']}) on the tasks either learnt "
            f"({', '.join(TASKS[t].display for t in learnt)}): {mine:.2f} against {theirs:.2f} {noise}. "
            f"{listed} {are} at chance for both (dev ROC AUC), so {their} scores differ by noise only; with {them}, "
            f"{g['label']} {g['average']:.2f} against {base['average']:.2f} ({g['average'] - base['average']:+.2f})."
        )
    if learned_nothing(sweep, tasks) and learned_nothing(base_sweep, base["tasks"]):
        verdict += (
            " Neither sweep learned any of its two-class tasks (dev ROC AUC at chance on each), so "
            "this compares finetuning noise, not features: finetune on more examples "
            "(`--max-train-examples`) or read the linear probe."
        )
    return verdict


def probe_margin(accuracy: float, test_examples: int | None) -> float:
    """How far two probe accuracies near `accuracy` must be apart before the report calls one above the other:
    twice the standard error of the difference of two accuracies on `test_examples` examples,
    2 * sqrt(2 * p (1 - p) / n) (0.058 for 600 examples at p = 0.5; random initialisations of `tiny` with seeds 0-5
    span 0.46-0.56 on the built-in probe). 0.03 where the run did not record n."""
    if not test_examples:
        return 0.03
    p = min(max(accuracy, 0.0), 1.0)
    return 2.0 * math.sqrt(2.0 * p * (1.0 - p) / test_examples)


def average_noise(sweep: Sweep, tasks: list[str]) -> float | None:
    """The standard error of a sweep's GLUE average over `tasks`, from each task's spread over its finetuning
    seeds: sqrt(sum_t sd_t^2 / n_t) / T (the tasks' seeds taken as independent). None when a task has fewer than
    two runs or no spread recorded."""
    from electra.glue.tasks import TASKS

    terms = []
    for t in tasks:
        stats = (sweep.per_task.get(t, {}).get("metrics") or {}).get(TASKS[t].score) or {}
        if stats.get("std") is None or (stats.get("n") or 0) < 2:
            return None
        terms.append(stats["std"] ** 2 / stats["n"])
    return math.sqrt(sum(terms)) / len(tasks) if tasks else None


def level_band(a: Sweep, b: Sweep, tasks: list[str]) -> float:
    """How far apart two GLUE averages must be before the report calls one better: twice the standard error of
    their difference (`average_noise` of each), and never less than LEVEL_POINTS. With a few seeds on a few hundred
    examples that is often a point or more; two finetuning seeds make it a rough estimate."""
    noise = [average_noise(s, tasks) for s in (a, b)]
    if any(x is None for x in noise):
        return LEVEL_POINTS
    return max(LEVEL_POINTS, 2.0 * math.sqrt(noise[0] ** 2 + noise[1] ** 2))


def learned_nothing(sweep: Sweep, tasks: list[str]) -> bool:
    """Whether every two-class task of `tasks` that records a dev AUC is at chance in `sweep` (and one does)."""
    from electra.glue.results import at_chance

    recorded = [sweep.per_task[t] for t in tasks if sweep.per_task.get(t, {}).get("dev_auc") is not None]
    return bool(recorded) and all(at_chance(e) for e in recorded)


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
    from electra.plots import plot_accuracy, plot_glue, plot_losses, plot_probe
    from electra.report_markdown import markdown

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
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="pretraining run directories, finetuning sweep directories (electra finetune --out), "
        "or directories that hold them",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder (index.md, report.json, PNGs)")
    parser.add_argument(
        "--stat",
        choices=STATS,
        default="median",
        help="statistic over finetuning runs shown per task and averaged (default: median, as the official README)",
    )


def run_report(args: argparse.Namespace) -> int:
    text = write_report(args.paths, args.out, args.stat)
    print(text)
    print(f"report written to {Path(args.out) / 'index.md'}")
    return 0
