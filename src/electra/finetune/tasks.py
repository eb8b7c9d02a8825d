"""The GLUE tasks as a table of small records (docs/faithfulness.md §6.3): where each split lives (on disk and on
the hub), its columns by header name, labels and metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from electra.errors import ElectraError

HUB_DATASET = "nyu-mll/glue"
KINDS: tuple[str, ...] = ("classification", "regression", "multilabel")  # of your own data


@dataclass(frozen=True)
class OwnFiles:
    """Where a task's splits are and how to read their rows."""

    train: str
    dev: str
    test: str | None = None
    text_column: str = "text"
    pair_column: str | None = None  # a second text: `[CLS] text [SEP] pair [SEP]`
    label_column: str = "label"
    id_column: str | None = None  # test predictions are written beside this column's values (else the row number)
    label_separator: str = ","  # multilabel labels in one string


@dataclass
class Example:
    index: str  # the row's id (the `index`/`id` column of test files; the row number otherwise)
    text_a: str
    text_b: str | None
    label: int | float | tuple[int, ...] | None  # class index, a score, class indices (multilabel), None (test)


@dataclass
class SplitData:
    task: Task
    split: Split
    source: str  # file path or hub id, for messages
    examples: list[Example]
    skipped: int = 0  # malformed rows skipped (only where the original data is known to contain them)


@dataclass(frozen=True)
class Split:
    """One split of a task: its file(s) in the GLUE distribution layout and its name on the hub."""

    name: str  # train | dev | dev_mm | test | test_mm | ax
    files: tuple[str, ...]  # candidate paths relative to the GLUE directory; the first that exists is read
    hub: tuple[str, str]  # (dataset config, split)
    labelled: bool
    submission: str | None = None  # the GLUE-server file this test split's predictions go to
    index_column: str = "index"  # test files only: the column the server's `index` comes from


@dataclass(frozen=True)
class Task:
    name: str  # the key used on the command line and in output directories
    display: str  # as GLUE spells it
    text_a: str  # header names in the TSV files
    text_b: str | None
    label_column: str
    labels: tuple[str, ...] | None  # label strings as written in the files and expected by the server; None: regression
    metrics: tuple[str, ...]  # reported on the dev split, x100
    score: str  # the one metric that picks the best run and enters the GLUE average (official README)
    epochs: int
    splits: tuple[Split, ...]
    hub_text_a: str
    hub_text_b: str | None
    no_header: tuple[str, ...] | None = None  # names for the columns of header-less train/dev files (CoLA)
    skip_malformed: bool = False  # the original data is known to contain malformed rows: skip and count them
    double_unordered: bool = False  # train also on (b, a) copies (MRPC and STS-B, docs/faithfulness.md §6.3)
    in_average: bool = True  # WNLI is not part of the GLUE-8 average
    regression_max: float | None = 5.0  # STS-B targets are y / regression_max, predictions clipped to [0, max]
    multilabel: bool = False  # your own data: several labels per example (one sigmoid output each)
    files: OwnFiles | None = None  # your own data: where the splits are and how to read them (electra.finetune.own)
    glue: bool = True  # False for your own data: never in a GLUE table, average or submission

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def kind(self) -> str:
        return "regression" if self.labels is None else "multilabel" if self.multilabel else "classification"

    @property
    def num_outputs(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    def split(self, name: str) -> Split:
        for s in self.splits:
            if s.name == name:
                return s
        raise KeyError(f"{self.display} has no split {name!r}")

    @property
    def dev_splits(self) -> tuple[Split, ...]:
        return tuple(s for s in self.splits if s.name.startswith("dev"))

    @property
    def test_splits(self) -> tuple[Split, ...]:
        return tuple(s for s in self.splits if not s.labelled)


def _splits(directory: str, config: str, test_index: str = "index") -> tuple[Split, ...]:
    return (
        Split("train", (f"{directory}/train.tsv",), (config, "train"), True),
        Split("dev", (f"{directory}/dev.tsv",), (config, "validation"), True),
        Split("test", (f"{directory}/test.tsv",), (config, "test"), False, f"{directory}.tsv", test_index),
    )


_AX = (("ax", "test"), False, "AX.tsv")  # AX's hub name, no labels, its server file
_MNLI = (
    Split("train", ("MNLI/train.tsv",), ("mnli", "train"), True),
    Split("dev", ("MNLI/dev_matched.tsv",), ("mnli", "validation_matched"), True),
    Split("dev_mm", ("MNLI/dev_mismatched.tsv",), ("mnli", "validation_mismatched"), True),
    Split("test", ("MNLI/test_matched.tsv",), ("mnli", "test_matched"), False, "MNLI-m.tsv"),
    Split("test_mm", ("MNLI/test_mismatched.tsv",), ("mnli", "test_mismatched"), False, "MNLI-mm.tsv"),
    # AX, the diagnostic set, is predicted by every MNLI run (docs/faithfulness.md §6.3)
    Split("ax", ("diagnostic/diagnostic.tsv", "AX/diagnostic.tsv", "MNLI/diagnostic.tsv", "AX/test.tsv"), *_AX),
)

# name | GLUE spelling (its directory) | TSV text_a, text_b, label | labels (none: regression) | metrics | score
# | epochs | hub text_a, text_b; the hub config is the name
_TABLE = """\
cola|CoLA|sentence||label|0,1|mcc|mcc|3|sentence|
sst2|SST-2|sentence||label|0,1|acc|acc|3|sentence|
mrpc|MRPC|#1 String|#2 String|Quality|0,1|f1,acc|acc|3|sentence1|sentence2
stsb|STS-B|sentence1|sentence2|score||pearson,spearman|spearman|10|sentence1|sentence2
qqp|QQP|question1|question2|is_duplicate|0,1|f1,acc|acc|3|question1|question2
mnli|MNLI|sentence1|sentence2|gold_label|contradiction,entailment,neutral|acc,acc_mm|acc|3|premise|hypothesis
qnli|QNLI|question|sentence|label|entailment,not_entailment|acc|acc|3|question|sentence
rte|RTE|sentence1|sentence2|label|entailment,not_entailment|acc|acc|10|sentence1|sentence2
wnli|WNLI|sentence1|sentence2|label|0,1|acc|acc|3|sentence1|sentence2"""
_EXTRA: dict[str, dict[str, Any]] = {
    "cola": {"no_header": ("source", "label", "original_label", "sentence")},
    "mrpc": {"double_unordered": True},
    "stsb": {"double_unordered": True},
    "qqp": {"skip_malformed": True, "splits": _splits("QQP", "qqp", test_index="id")},
    "mnli": {"splits": _MNLI},
    "wnli": {"in_average": False},
}


def _task(row: str) -> Task:
    name, display, a, b, label, labels, metrics, score, epochs, hub_a, hub_b = row.split("|")
    extra = {"splits": _splits(display, name), **_EXTRA.get(name, {})}
    names = tuple(labels.split(",")) if labels else None
    return Task(
        name,
        display,
        a,
        b or None,
        label,
        names,
        tuple(metrics.split(",")),
        score,
        int(epochs),
        hub_text_a=hub_a,
        hub_text_b=hub_b or None,
        **extra,
    )


TASKS: dict[str, Task] = {t.name: t for t in map(_task, _TABLE.splitlines())}

# The 8 tasks of the official README's GLUE average (docs/faithfulness.md §6.5), in its column order.
AVERAGE_TASKS: tuple[str, ...] = tuple(name for name, t in TASKS.items() if t.in_average)

_ALIASES = {"sst": "sst2", "sst-2": "sst2", "sts": "stsb", "sts-b": "stsb", "ax": "mnli", "mnli-m": "mnli"}


def parse_tasks(spec: str) -> list[Task]:
    """`all` or a comma-separated list (`cola,sst2,...`; GLUE spellings such as `SST-2` work too)."""
    if spec.strip().lower() == "all":
        return list(TASKS.values())
    out: list[Task] = []
    for raw in spec.split(","):
        key = raw.strip().lower()
        if not key:
            continue
        key = _ALIASES.get(key, key)
        if key not in TASKS:
            raise ElectraError(f"unknown GLUE task {raw.strip()!r}; choose from all, {', '.join(TASKS)}")
        if TASKS[key] not in out:
            out.append(TASKS[key])
    if not out:
        raise ElectraError("--tasks is empty; give `all` or a comma-separated list such as cola,sst2")
    return out
