"""Every number of the report (`build_report`) and what they mean, one finding each."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from electra.errors import ElectraError
from electra.report.runs import PROBE_KEYS, PretrainRun, Sweep, fmt_number
from electra.report.scores import glue_average, learned_nothing, level_band, majority_average, stability, task_score
from electra.stats import probe_margin


def build_report(runs: list[PretrainRun], sweeps: list[Sweep], stat: str = "median") -> dict[str, Any]:
    """Every number the tables show."""
    from electra.finetune.results import at_chance, glue_label
    from electra.finetune.tasks import AVERAGE_TASKS

    glue = []
    for s in sweeps:
        covered = [t for t in AVERAGE_TASKS if t in s.per_task]
        entry = {"name": s.name, "path": str(s.path), "model": s.model, "label": glue_label(covered), "tasks": covered}
        entry["average"] = glue_average(s, covered, stat)
        entry["scores"] = {t: task_score(s, t, stat) for t in s.per_task}
        entry["std"] = {t: v["metrics"][v["score"]]["std"] for t, v in s.per_task.items()}
        entry["runs"] = {t: v["n_runs"] for t, v in s.per_task.items()}
        # the score of always predicting the train set's majority class (mean score for STS-B)
        entry["majority"] = {t: v["majority"][v["score"]] for t, v in s.per_task.items() if v.get("majority")}
        # tasks whose runs rank the dev examples no better than chance (median dev ROC AUC in its band)
        entry["at_chance"] = [t for t, v in s.per_task.items() if at_chance(v)]
        entry["metrics"] = {t: v["metrics"] for t, v in s.per_task.items()}
        own = {t: {"display": v["display"], "metrics": v["metrics"]} for t, v in s.own_tasks.items()}
        glue.append(entry | {"own": own})
    pretrain = []
    for r in runs:
        cfg = r.config.get("config", {})
        model = cfg.get("model", {})
        last = r.train[-1] if r.train else {}
        last_eval = r.eval[-1] if r.eval else {}
        entry = {"name": r.name, "path": str(r.path), "step": r.last_step, "max_steps": cfg.get("max_steps")}
        entry |= {"hidden_size": model.get("hidden_size"), "layers": model.get("num_hidden_layers")}
        entry |= {k: cfg.get(k) for k in ("batch_size", "max_length", "adam_epsilon")}
        entry["freeze_word_embeddings"] = bool(cfg.get("freeze_word_embeddings"))
        entry["train"] = {k: last.get(k) for k in ("loss", "gen_loss", "disc_loss", "gen_accuracy", "disc_accuracy")}
        entry["eval"] = {k: last_eval.get(k) for k in EVAL_KEYS}
        entry["probe_set"] = r.config.get("run", {}).get("probe")
        pretrain.append(entry | {"disc_auc_peak": _auc_peak(r.eval), "weights_moved": _weights_moved(r.path)})
    report = {"stat": stat, "glue": glue, "stability": stability(sweeps, stat), "pretrain": pretrain}
    report["findings"] = findings(report, sweeps)
    return report


EVAL_KEYS = (
    *"step gen_loss gen_loss_unigram gen_accuracy disc_loss disc_accuracy disc_auc disc_auc_unigram".split(),
    *("disc_precision", "disc_recall", "replaced_fraction", *PROBE_KEYS, "probe_test_examples"),
)


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
    """The discriminator's held-out AUC against scoring each token by its rarity alone."""
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
            f"{peak['disc_auc_unigram']:.3f}: the generator learnt word frequencies; not a fault."
        )
    return text


UNIGRAM_NATS = 0.1  # generator loss within this of a unigram model's: it predicts masked words by frequency alone


def generator_finding(name: str, last: dict[str, Any], frozen_table: bool = False) -> str | None:
    """The generator's held-out loss against predicting every masked word by its frequency alone."""
    frequency = "predicting every masked word by its frequency in the training data alone"
    if (found := _against_baseline(name, last, "gen_loss", "generator loss", frequency)) is None:
        return None
    loss, unigram, text = found
    if loss >= unigram + UNIGRAM_NATS:
        if frozen_table:
            return text + (
                ": the generator has not learnt word frequencies, as expected with a frozen word table "
                '(docs/pretraining.md, "Counted words, trained layers").'
            )
        return text + ": the generator has not yet learnt even which words are frequent."
    if loss > unigram - UNIGRAM_NATS:
        return text + ": the generator predicts masked words by their frequency alone, not yet from context."
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
    """How far pretraining moved the discriminator's transformer layers, and the likely cause of a small move."""
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
        line += f": they are hardly trained: {cause} (docs/pretraining.md, 'Why short runs finetune worse than random"
        line += " weights')"
    return line + "."


def findings(report: dict[str, Any], sweeps: list[Sweep]) -> list[str]:
    """What the numbers mean, in words, one finding a line."""
    out = []
    for r in report["pretrain"]:
        e = r["eval"]
        baseline = 1 - e["replaced_fraction"] if e.get("replaced_fraction") is not None else None
        if e.get("disc_recall") is not None and e["disc_recall"] < 0.02:
            out.append(
                f"**{r['name']}**: the discriminator still calls almost every token original (held-out recall "
                f"{100 * e['disc_recall']:.1f} %, AUC {fmt_number(e.get('disc_auc'), 3)}): early training, not a bug."
            )
        elif baseline is not None and e.get("disc_accuracy") is not None and e["disc_accuracy"] <= baseline:
            out.append(
                f"**{r['name']}**: the discriminator's held-out accuracy {e['disc_accuracy']:.4f} is not above "
                f"calling every token original ({baseline:.4f}; recall {100 * e['disc_recall']:.1f} %, AUC "
                f"{fmt_number(e.get('disc_auc'), 3)}): early training, not a bug."
            )
        out += [f for f in (frequency_finding(r["name"], e, r.get("disc_auc_peak")),) if f]
        out += [f for f in (generator_finding(r["name"], e, r.get("freeze_word_embeddings", False)),) if f]
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
    from electra.finetune.results import chance_note
    from electra.finetune.tasks import TASKS

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
        majority = majority_average(sweep, g["tasks"])
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
    """A sweep against random initialisation; tasks both rank at chance (label prior and noise) are left out of
    the verdict when either sweep learnt some other task."""
    from electra.finetune.results import at_chance
    from electra.finetune.tasks import TASKS

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
        verdict += " Neither sweep learned any of its two-class tasks (dev ROC AUC at chance on each): this is noise."
    return verdict
