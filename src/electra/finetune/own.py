"""Your own data: CSV, TSV or JSON-lines files, or a `datasets` id, as a `Task` like the GLUE ones, so that
featurization, training, metrics and results are the same code. Kinds: classification (one label), regression
(a number, squared error on the raw value) and multilabel (one sigmoid per label); docs/downstream.md describes
the formats, labels and metrics."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from electra.errors import ElectraError
from electra.finetune.tasks import KINDS, Example, OwnFiles, Split, SplitData, Task

Kind = Literal["classification", "regression", "multilabel"]
_METRICS = {
    "classification": ("acc", "macro_f1"),
    "regression": ("pearson", "spearman"),
    "multilabel": ("micro_f1", "macro_f1"),
}
_SCORE = {"classification": "acc", "regression": "spearman", "multilabel": "micro_f1"}


@dataclass
class _Row:
    values: dict[str, Any]
    where: str  # file:line, for messages


def _read_rows(source: str, role: str) -> list[_Row]:
    if source.startswith("hf:"):
        return _read_hub(source, role)
    path = Path(source)
    if not path.is_file():
        raise ElectraError(f"--{role} {source}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return _read_delimited(path, "\t" if suffix == ".tsv" else ",")
        if suffix in (".jsonl", ".json"):
            return _read_jsonl(path)
    except UnicodeDecodeError as err:
        raise ElectraError(
            f"{path} is not UTF-8 text (byte {err.object[err.start]:#x} at offset {err.start})"
        ) from None
    raise ElectraError(f"--{role} {source}: unknown format {suffix or '(no suffix)'}; expected .csv, .tsv or .jsonl")


def _read_delimited(path: Path, delimiter: str) -> list[_Row]:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        header = next(reader, None)
        if not header:
            raise ElectraError(f"{path} is empty; expected a header row naming the columns")
        rows = []
        for fields in reader:
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):
                raise ElectraError(
                    f"{path}:{reader.line_num}: {len(fields)} fields, but the header has {len(header)} ({header})"
                )
            rows.append(_Row(dict(zip(header, fields, strict=True)), f"{path}:{reader.line_num}"))
    return rows


def _read_jsonl(path: Path) -> list[_Row]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise ElectraError(f"{path}:{number}: not a JSON object ({err.msg})") from None
            if not isinstance(value, dict):
                raise ElectraError(f"{path}:{number}: expected a JSON object per line, got {type(value).__name__}")
            rows.append(_Row(value, f"{path}:{number}"))
    return rows


def _read_hub(source: str, role: str) -> list[_Row]:
    from electra import hub

    ds, _ = hub.load_dataset(source, role)
    names = {col: getattr(feature, "names", None) for col, feature in ds.features.items()}
    rows = []
    for i, row in enumerate(ds):
        # class ids of a ClassLabel column are read as their names
        values = {
            k: names[k][v] if names.get(k) and isinstance(v, int) and 0 <= v < len(names[k]) else v
            for k, v in row.items()
        }
        rows.append(_Row(values, f"{source} row {i}"))
    return rows


def _text(row: _Row, column: str) -> str:
    value = row.values[column]
    text = "" if value is None else str(value)
    if not text.strip():
        raise ElectraError(f"{row.where}: empty text in column {column!r}")
    return text


def _label_names(value: Any, kind: str, separator: str) -> list[str]:
    """The label names of one row ([] when it has none: a null or empty value, or no labels for multilabel)."""
    if value is None:
        return []
    if kind == "multilabel":
        if isinstance(value, list):
            return [str(v).strip() for v in value if str(v).strip()]
        return [p.strip() for p in str(value).split(separator) if p.strip()]
    return [str(value).strip()] if str(value).strip() else []


def _sorted_labels(names: set[str]) -> tuple[str, ...]:
    if all(re.fullmatch(r"-?\d+", n) for n in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))


def _check_columns(rows: list[_Row], files: OwnFiles, labelled: bool, source: str) -> None:
    wanted = [files.text_column] + ([files.pair_column] if files.pair_column else [])
    wanted += [files.label_column] if labelled else []
    wanted += [files.id_column] if files.id_column and not labelled else []
    found = list(rows[0].values)
    missing = [c for c in wanted if c not in rows[0].values]
    if missing:
        raise ElectraError(f"{source}: no column {', '.join(repr(c) for c in missing)}; the columns are {found}")


def _examples(rows: list[_Row], task: Task, files: OwnFiles, labelled: bool) -> list[Example]:
    examples = []
    for i, row in enumerate(rows):
        needed = [files.text_column, files.pair_column, files.label_column if labelled else None]
        missing = [c for c in needed if c and c not in row.values]
        if missing:
            raise ElectraError(f"{row.where}: no column {missing[0]!r}; this row has {list(row.values)}")
        label: Any = None
        if labelled:
            label = _parse_label(row, task, files)
        index = str(row.values[files.id_column]) if files.id_column and files.id_column in row.values else str(i)
        pair = _text(row, files.pair_column) if files.pair_column else None
        examples.append(Example(index, _text(row, files.text_column), pair, label))
    return examples


def _parse_label(row: _Row, task: Task, files: OwnFiles) -> Any:
    value = row.values[files.label_column]
    if task.is_regression:
        try:
            if isinstance(value, bool) or not math.isfinite(float(value)):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ElectraError(
                f"{row.where}: {files.label_column} {value!r} is not a number (a regression column holds numbers only)"
            ) from None
    names = _label_names(value, task.kind, files.label_separator)
    if not names and task.kind == "classification":
        raise ElectraError(f"{row.where}: empty label in column {files.label_column!r}")
    unknown = [n for n in names if n not in task.labels]
    if unknown:
        raise ElectraError(
            f"{row.where}: label {unknown[0]!r} does not occur in the train file (its labels: {', '.join(task.labels)})"
        )
    ids = [task.labels.index(n) for n in names]
    return tuple(ids) if task.multilabel else ids[0]


def own_task(
    files: OwnFiles, kind: Kind = "classification", labels: list[str] | None = None, name: str | None = None
) -> Task:
    """The `Task` for your files: its label set (from the train file unless `labels` is given), metrics and splits.
    Reads the train file once to find the labels; every split is read and checked again when it is featurized."""
    if kind not in KINDS:
        raise ElectraError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    name = name or kind
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ElectraError(f"--name {name!r}: use letters, digits, '_', '-' or '.' (it names the output folder)")
    label_set: tuple[str, ...] | None = None
    if kind != "regression":
        if labels:
            label_set = tuple(labels)
        else:
            rows = _read_rows(files.train, "train")
            if not rows:
                raise ElectraError(f"{files.train} has no rows")
            _check_columns(rows, files, True, files.train)
            found = {n for r in rows for n in _label_names(r.values[files.label_column], kind, files.label_separator)}
            label_set = _sorted_labels(found)
        if len(label_set) < (1 if kind == "multilabel" else 2):
            raise ElectraError(f"{files.train}: {kind} needs at least two labels, found {list(label_set)}")
    splits = [Split("train", (files.train,), ("", "train"), True), Split("dev", (files.dev,), ("", "dev"), True)]
    if files.test:
        splits.append(Split("test", (files.test,), ("", "test"), False))
    columns = (files.text_column, files.pair_column)
    return _task(name, kind, label_set, columns, files.label_column, tuple(splits), columns, files)


def _task(
    name: str,
    kind: str,
    labels: tuple[str, ...] | None,
    texts: tuple[str, str | None],
    label_column: str,
    splits: tuple[Split, ...],
    hub: tuple[str, str | None],
    files: OwnFiles | None = None,
) -> Task:
    """An own-data `Task`: 3 epochs, never in a GLUE table or average."""
    own = {"in_average": False, "regression_max": None, "multilabel": kind == "multilabel", "glue": False}
    return Task(
        name, name, *texts, label_column, labels, _METRICS[kind], _SCORE[kind], 3, splits, *hub, files=files, **own
    )


def read_split(task: Task, split: Split) -> SplitData:
    """The examples of one split of an own-data task; every row checked (columns, empty text, labels)."""
    assert task.files is not None
    source = split.files[0]
    rows = _read_rows(source, split.name)
    if not rows:
        raise ElectraError(f"{source} has no rows")
    _check_columns(rows, task.files, split.labelled, source)
    return SplitData(task, split, source, _examples(rows, task, task.files, split.labelled))


def task_record(task: Task) -> dict[str, Any]:
    """What a run's config.json keeps of an own-data task, so that export and predict can rebuild it."""
    return {
        "kind": task.kind,
        "labels": list(task.labels) if task.labels is not None else None,
        "text_column": task.text_a,
        "pair_column": task.text_b,
    }


def task_from_record(name: str, record: dict[str, Any]) -> Task:
    """The `Task` of a finished own-data run (no files: for export and prediction only)."""
    kind = record["kind"]
    labels = tuple(record["labels"]) if record.get("labels") is not None else None
    texts = (record.get("text_column") or "text", record.get("pair_column"))
    return _task(name, kind, labels, texts, "label", (), ("text", None))
