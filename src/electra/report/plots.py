"""The PNG plots of `electra report`: pretraining losses, accuracy and AUC, the live probe, GLUE scores."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from electra.io import save_figure
from electra.report.markdown import task_columns
from electra.report.runs import LOSS_KEYS, LOSS_TITLES, PretrainRun
from electra.stats import probe_margin

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _figure(nrows: int, ncols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend state

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _min_span(ax: Axes, span: float, relative: bool = False, bounds: tuple[float, float] | None = None) -> None:
    """Widen the y-axis to at least `span` (relative to the values when `relative`) around the data, shifted to stay
    inside `bounds`, so that a tiny difference does not fill the whole height."""
    lo, hi = ax.get_ylim()
    want = span * max(abs(lo), abs(hi)) if relative else span
    if hi - lo < want:
        mid = (lo + hi) / 2
        lo, hi = mid - want / 2, mid + want / 2
        if bounds is not None:
            shift = max(0.0, bounds[0] - lo) - max(0.0, hi - bounds[1])
            lo, hi = lo + shift, hi + shift
        ax.set_ylim(lo, hi)


def _series(ax: Axes, records: list[dict[str, Any]], key: str, fmt: str, **style: Any) -> bool:
    """`key` over the steps of the records that have it (nothing drawn when none has); whether any has."""
    points = [x for x in records if x.get(key) is not None]
    if points:
        ax.plot([x["step"] for x in points], [x[key] for x in points], fmt, **style)
    return bool(points)


def _held_out(ax: Axes, run: PretrainRun, key: str, color: str) -> None:
    """The held-out evaluations of `key` as dashed points over the training curve."""
    _series(ax, run.eval, key, "o--", color=color, ms=4, lw=0.8, label=f"{run.name} (held-out)")


def plot_losses(runs: list[PretrainRun], path: Path) -> None:
    fig, axes = _figure(1, 3, 15, 4)
    for ax, key in zip(axes[0], LOSS_KEYS, strict=True):
        baseline = False
        for i, r in enumerate(runs):
            color = f"C{i % 10}"
            xs = [x["step"] for x in r.train if x.get(key) is not None]
            ax.plot(xs, [x[key] for x in r.train if x.get(key) is not None], color=color, lw=1, label=r.name)
            _held_out(ax, r, key, color)
            # the generator's loss without context: every masked word predicted by its frequency
            label = f"{r.name}: word frequency alone (held-out)"
            baseline |= _series(ax, r.eval, f"{key}_unigram", ":", color=color, lw=1.5, label=label)
        if baseline:
            ax.legend(fontsize=8)
        ax.set_title(LOSS_TITLES[key])
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        _min_span(ax, 0.2, relative=True)
    axes[0][0].legend(fontsize=8)
    save_figure(fig, path)


def plot_accuracy(runs: list[PretrainRun], path: Path) -> None:
    fig, axes = _figure(1, 3, 15, 4)
    panels = [("generator accuracy at masked positions", "gen_accuracy")]
    panels.append(("discriminator accuracy (all real tokens)", "disc_accuracy"))
    for ax, (title, key) in zip(axes[0][:2], panels, strict=True):
        for i, r in enumerate(runs):
            color = f"C{i % 10}"
            tr = [x for x in r.train if x.get(key) is not None]
            ax.plot([x["step"] for x in tr], [x[key] for x in tr], color=color, lw=1, label=f"{r.name} (train)")
            _held_out(ax, r, key, color)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        _min_span(ax, 0.1, bounds=(0.0, 1.0))
    ax = axes[0][2]
    styles = {"disc_auc": "o-", "disc_precision": "s--", "disc_recall": "^:"}
    for i, r in enumerate(runs):
        for key, style in styles.items():
            _series(
                ax, r.eval, key, style, color=f"C{i % 10}", ms=4, lw=1, label=f"{r.name} {key.removeprefix('disc_')}"
            )
        # what word frequency alone gives (electra.train.step.evaluate)
        label = f"{r.name} AUC of word rarity alone"
        _series(ax, r.eval, "disc_auc_unigram", "x-.", color=f"C{i % 10}", ms=4, lw=1, alpha=0.6, label=label)
    ax.set_title("held-out discriminator AUC / precision / recall")
    ax.set_xlabel("step")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    for a in axes[0]:
        if a.has_data():
            a.legend(fontsize=7)
    save_figure(fig, path)


def plot_probe(runs: list[PretrainRun], path: Path) -> None:
    """Probe accuracy over evaluations, with the random-initialisation and majority-class levels as lines and the
    band around random initialisation that `electra report` calls level (`electra.stats.probe_margin`)."""
    fig, axes = _figure(1, 2, 11, 4)
    for ax, (kind, title) in zip(axes[0], (("cls", "[CLS] state"), ("mean", "mean-pooled states")), strict=True):
        for i, r in enumerate(runs):
            ev = [x for x in r.eval if x.get(f"probe_{kind}") is not None]
            if not ev:
                continue
            color = f"C{i % 10}"
            steps = [x["step"] for x in ev]
            ax.plot(steps, [x[f"probe_{kind}"] for x in ev], "o-", color=color, ms=4, lw=1, label=r.name)
            base = ev[-1][f"probe_random_{kind}"]
            ax.axhline(base, color=color, ls="--", lw=1, label=f"{r.name}: random initialisation")
            if ev[-1].get("probe_test_examples"):  # the band within which the report calls the probe level
                margin = probe_margin(base, ev[-1]["probe_test_examples"])
                label = f"{r.name}: level with it (test-set noise)"
                ax.axhspan(base - margin, base + margin, color=color, alpha=0.12, lw=0, label=label)
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
    from electra.finetune.tasks import TASKS

    columns = [t for t in task_columns(report) if any(t in g["scores"] for g in report["glue"])]
    k = len(report["glue"])
    width = 0.8 / max(k, 1)
    fig, axes = _figure(1, 1, max(6.0, 1.1 * len(columns) + 2), 4.5)
    ax = axes[0][0]
    x = np.arange(len(columns))
    top = 0.0  # the highest value label, to leave the legend room above it
    hatched = False
    for i, g in enumerate(report["glue"]):
        heights = [g["scores"].get(t, np.nan) for t in columns]
        errors = [g["std"].get(t, 0.0) for t in columns]
        pos = x - 0.4 + width * (i + 0.5)
        avg = f", {g['label']} {g['average']:.1f}" if g["average"] is not None else ""
        bars = ax.bar(pos, heights, width, yerr=errors, capsize=3, color=f"C{i % 10}")
        ax.bar(np.nan, np.nan, color=f"C{i % 10}", label=f"{g['name']}{avg}")  # its legend entry, never hatched
        for bar, t in zip(bars, columns, strict=True):  # a task this sweep learnt nothing of: hatched
            if t in g.get("at_chance", ()):
                bar.set_hatch("///")
                bar.set_edgecolor("white")
                hatched = True
        for px, h, err in zip(pos, heights, errors, strict=True):
            if not np.isnan(h):  # the value above its error bar
                label_y = max(h, 0) + err
                top = max(top, label_y)
                where = {"ha": "center", "va": "bottom", "xytext": (0, 2), "textcoords": "offset points"}
                ax.annotate(f"{h:.1f}", (px, label_y), fontsize=7, **where)
    labelled = False
    for j, t in enumerate(columns):  # the floor each task's bars must clear: the majority class
        floor = next((g["majority"][t] for g in report["glue"] if t in g.get("majority", {})), None)
        if floor is not None:
            label = None if labelled else "majority class (always the most frequent train label)"
            ax.hlines(floor, x[j] - 0.45, x[j] + 0.45, colors="black", linestyles="dashed", lw=1, label=label)
            labelled = True
    if hatched:
        chance = "hatched: dev ROC AUC at chance (the runs learnt nothing of the task)"
        ax.bar(np.nan, np.nan, color="lightgray", hatch="///", edgecolor="white", label=chance)
    ax.set_xticks(x, [f"{TASKS[t].display}\n({TASKS[t].score})" for t in columns])
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel(f"dev score ({report['stat']} over runs; error bar: std)")
    ax.set_title("GLUE dev results per task")
    ax.grid(axis="y", alpha=0.3)
    if top > 0:  # a band above the tallest bar, for the legend (it hid a bar's label)
        ax.set_ylim(top=top * 1.35)
    ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, path)
