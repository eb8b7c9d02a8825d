"""The markdown page of `electra report`: findings, the GLUE, pretraining and probe tables, and the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from electra.report.runs import PROBE_KEYS, fmt_number


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def task_columns(report: dict[str, Any]) -> list[str]:
    from electra.finetune.tasks import AVERAGE_TASKS, TASKS

    present = {t for g in report["glue"] for t in g["scores"]}
    return [t for t in TASKS if t in AVERAGE_TASKS or t in present]


def markdown(report: dict[str, Any], images: list[str]) -> str:
    from electra.finetune.tasks import TASKS

    stat = report["stat"]
    out = ["# ELECTRA report", ""]
    if report.get("findings"):
        out += ["## Findings", ""] + [f"- {f}" for f in report["findings"]] + [""]
    columns = task_columns(report)
    heads = [TASKS[t].display for t in columns]
    metrics_row = [
        TASKS[t].score.replace("mcc", "MCC").replace("acc", "Acc").replace("spearman", "Spearman") for t in columns
    ]
    n = 0
    glue_rows = [g for g in report["glue"] if g["scores"]]  # sweeps with GLUE tasks (not only your own data)
    if glue_rows:
        n += 1
        out += [
            f"## Table {n}: GLUE dev results ({stat} over finetuning runs)",
            "",
            _row(["Model", *heads, "Avg."]),
            "|" + "---|" * (len(heads) + 2),
            _row(["Metrics", *metrics_row, ""]),
        ]
        for g in glue_rows:
            cells = [fmt_number(g["scores"].get(t)) for t in columns]
            label = g["label"].replace(" (no ", ", no ").rstrip(")")  # GLUE-5 (no QQP) -> GLUE-5, no QQP
            out.append(_row([g["name"], *cells, f"{fmt_number(g['average'])} ({label})"]))
        out.append(_row(["runs", *["/".join(str(g["runs"].get(t, 0)) for g in glue_rows) for t in columns], ""]))
        out += [
            "",
            "Each cell is the task's score metric (the official README's choice); `runs` gives the number "
            "of finetuning runs behind each cell (one number per row above). `GLUE-k (no X)` averages only "
            "the tasks present; it is not the 8-task GLUE average.",
            "",
        ]
    if report["glue"]:
        n += 1
        out += [
            f"## Table {n}: run statistics per task",
            "",
            _row(["Model", "task", "metric", "runs", "median", "mean", "std", "max", "min"]),
            "|" + "---|" * 9,
        ]
        for g in report["glue"]:
            tasks = [(TASKS[t].display, g["metrics"][t]) for t in columns if t in g["metrics"]]
            tasks += [(v["display"], v["metrics"]) for v in g.get("own", {}).values()]  # your own data
            for display, metrics in tasks:
                for metric, s in metrics.items():
                    numbers = (fmt_number(s[k]) for k in ("median", "mean", "std", "max", "min"))
                    out.append(_row([g["name"], display, metric, str(s["n"]), *numbers]))
        out.append("")
    if glue_rows:
        n += 1
        out += [
            f"## Table {n}: standard deviation of finetuning runs (same pretrained model, different seeds)",
            "",
            _row(["Model", *heads]),
            "|" + "---|" * (len(heads) + 1),
            _row(["Metrics", *metrics_row]),
        ]
        for g in glue_rows:
            out.append(_row([g["name"], *[fmt_number(g["std"].get(t)) for t in columns]]))
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
            _row([st["label"], *(fmt_number(s[k]) for k in ("mean", "std", "max", "min"))]),
            "",
        ]
        out += [_row(["Sweep", f"{st['label']} avg."]), "|---|---|"]
        out += [_row([name, fmt_number(v)]) for name, v in st["averages"].items()] + [""]
        n += 1
        task_heads = [TASKS[t].display for t in st["tasks"]]
        out += [
            f"## Table {n}: standard deviation of each task over the {s['n']} sweeps",
            "",
            _row(["", *task_heads]),
            "|" + "---|" * (len(task_heads) + 1),
            _row(["Std", *(fmt_number(st["per_task"][t]["std"]) for t in st["tasks"])]),
            "",
        ]
    if report["pretrain"]:
        out += [
            "## Pretraining runs",
            "",
            _row(
                "Run|steps|H / layers|batch × length|loss|gen loss|disc loss|held-out gen acc|held-out disc acc"
                "|held-out disc AUC|AUC of word rarity alone".split("|")
            ),
            "|" + "---|" * 11,
        ]
        for r in report["pretrain"]:
            steps = f"{r['step']}/{r['max_steps']}" if r["max_steps"] else str(r["step"])
            e, t = r["eval"], r["train"]
            shape = [f"{r['hidden_size']} / {r['layers']}", f"{r['batch_size']} × {r['max_length']}"]
            losses = [fmt_number(t[k], 4 if k == "disc_loss" else 3) for k in ("loss", "gen_loss", "disc_loss")]
            held_out = ("gen_accuracy", "disc_accuracy", "disc_auc", "disc_auc_unigram")
            out.append(_row([r["name"], steps, *shape, *losses, *(fmt_number(e.get(k), 4) for k in held_out)]))
        out += ["", "Train values are the last logged step's; held-out values the last evaluation's.", ""]
        probed = [r for r in report["pretrain"] if r["eval"].get("probe_cls") is not None]
        if probed:
            out += [
                "### Linear probe on frozen features (test accuracy)",
                "",
                _row("Run|probe set|step|[CLS]|mean-pooled|random [CLS]|random mean-pooled|majority class".split("|")),
                "|" + "---|" * 8,
            ]
            for r in probed:
                e = r["eval"]
                out.append(
                    _row([r["name"], str(r["probe_set"]), str(e["step"]), *(fmt_number(e[k], 3) for k in PROBE_KEYS)])
                )
            out += [
                "",
                "A logistic regression on the final layer's [CLS] state or its mean over tokens; *random* is "
                "the same probe on the randomly initialised encoder of the same shape: the line to beat.",
                "",
            ]
    if images:
        out += ["## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images] + [""]
    return "\n".join(out)
