"""A GLUE or own-data run saved with `save_model` as a model directory: `ElectraModel` plus the official head's
weights, or with `head="transformers"` an `ElectraForSequenceClassification`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from electra.config import ModelConfig, from_dict
from electra.errors import ElectraError
from electra.export import save_model_dir, verify_export
from electra.finetune.encoder import SequenceClassifier
from electra.finetune.own import task_from_record
from electra.finetune.tasks import TASKS, Task
from electra.hf import copy_state, hf_class, hf_config, load_weights, quiet_transformers
from electra.io import write_dir, write_json
from electra.tokenizer import WordPiece, load_tokenizer

GLUE_HEAD = "classifier.safetensors"


def is_glue_run(path: str | os.PathLike) -> bool:
    """A directory written by `electra finetune` for one (task, seed): config.json with a task and metrics.json."""
    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "task" in config and "finetune" in config and (path / "metrics.json").is_file()


def finetuned_task(path: str | os.PathLike) -> str | None:
    """What a finetuning run was: the GLUE task it names, "own" (your own data), "tagging", ..."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return "own" if "own_task" in config else config.get("task")


def _kind(config: dict[str, Any]) -> str:
    """What a finetuning run is called in messages: a GLUE run, or one on your own data."""
    return "finetuning run (your own data)" if "own_task" in config else "GLUE run"


def _glue_tokenizer(run: Path, config: dict[str, Any], tokenizer: str | None) -> WordPiece:
    source = tokenizer or config.get("tokenizer")
    try:
        tok = load_tokenizer(source)
    except ElectraError as err:
        raise ElectraError(
            f"{_kind(config)} {run}: cannot load its tokenizer {source} ({err}); pass --tokenizer"
        ) from None
    if tokenizer is None and tok.fingerprint() != config.get("tokenizer_fingerprint"):
        raise ElectraError(
            f"{_kind(config)} {run}: tokenizer {source} is not the one the run used (fingerprint "
            f"{tok.fingerprint()}, expected {config.get('tokenizer_fingerprint')}); pass --tokenizer"
        )
    return tok


def load_glue_run(
    run: str | os.PathLike, tokenizer: str | None = None
) -> tuple[SequenceClassifier, Task, dict[str, Any], WordPiece]:
    """(SequenceClassifier in eval mode, the task, the run's config, its tokenizer) from a `--save-model` run."""

    run = Path(run)
    config = json.loads((run / "config.json").read_text())
    weights = run / "model.safetensors"
    if not weights.is_file():
        raise ElectraError(
            f"{_kind(config)} {run} has no model.safetensors: finetune with --save-model to keep the weights"
        )
    if "own_task" in config:  # your own data (electra.finetune.own)
        task = task_from_record(config["task"], config["own_task"])
    elif config["task"] in TASKS:
        task = TASKS[config["task"]]
    else:
        raise ElectraError(f"GLUE run {run}: unknown task {config['task']!r}")
    model_cfg = from_dict(ModelConfig, dict(config["model_config"]), str(run / "config.json"))
    recipe = config["finetune"]
    model = SequenceClassifier(
        model_cfg, task.num_outputs, recipe.get("head_dropout", 0.1), recipe.get("head", "official")
    )
    load_weights(model, weights, f"a {task.display} classifier")
    return model.eval(), task, config, _glue_tokenizer(run, config, tokenizer)


def glue_head_readme(head: dict[str, Any]) -> str:
    labels = head["id2label"]
    if head["regression"]:
        scale = f"{head['regression_max']:g}"
        output = f"one number y; the {head['display']} score is {scale} · y (trained on score / {scale}, squared error)"
    else:
        output = "logits over the labels " + ", ".join(f"{i} = `{name}`" for i, name in labels.items())
    return f"""# {head["display"]} classifier finetuned with `electra finetune` (seed {head["seed"]})

The encoder is a `transformers` `ElectraModel` (this directory); the task head is `{GLUE_HEAD}`:
`weight` [{head["num_outputs"]}, {head["hidden_size"]}] and `bias` [{head["num_outputs"]}], applied to the hidden state
of the first token ([CLS]); dropout {head["dropout"]:g} before it during training, none at inference. No pooler. Output:
{output}.

```python
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, ElectraModel

tokenizer = AutoTokenizer.from_pretrained("DIR")
encoder = ElectraModel.from_pretrained("DIR").eval()
head = load_file("DIR/{GLUE_HEAD}")
batch = tokenizer({head["example"]}, return_tensors="pt")
h = encoder(**batch).last_hidden_state[:, 0]
outputs = h @ head["weight"].T + head["bias"]
```

This is not `ElectraForSequenceClassification`, whose head (dense, GELU, dropout, out_proj) has another shape;
the official ELECTRA finetuning head is the single dense layer above. Dev metrics of this run: {head["metrics"]}.
"""


def export_glue_run(
    run: str | os.PathLike,
    out: str | os.PathLike,
    force: bool = False,
    verify: bool = True,
    tokenizer: str | None = None,
) -> dict[str, Any]:
    """Export a finetuned GLUE run: the encoder as an ElectraModel directory plus the head and its labels."""
    from safetensors.torch import save_file

    run = Path(run)
    model, task, config, tok = load_glue_run(run, tokenizer)
    metrics = json.loads((run / "metrics.json").read_text())
    if model.head == "transformers":
        return _export_sequence_classifier(run, out, model, task, config, tok, metrics, force, verify)
    scale = f" / {task.regression_max:g}" if task.regression_max else ""
    labels = list(task.labels) if task.labels is not None else [f"{task.display} score{scale}"]
    head = {"format": "electra-glue-head", "task": task.name, "display": task.display, "seed": config.get("seed")}
    head |= {"labels": labels, "id2label": dict(enumerate(labels)), "num_outputs": task.num_outputs}
    regression_max = task.regression_max if task.is_regression else None
    head |= {"regression": task.is_regression, "regression_max": regression_max, "multilabel": task.multilabel}
    head |= {"hidden_size": model.config.hidden_size, "dropout": model.dropout.p, "input": "hidden state of [CLS]"}
    head |= {"weights": GLUE_HEAD, "source": str(run.resolve()), "pretrained_model": config.get("model")}
    head["metrics"] = metrics.get("metrics", {})
    head["example"] = '"a sentence", "a second sentence"' if task.text_b else '"a sentence"'

    def write(tmp: Path) -> None:
        extra = {"id2label": head["id2label"], "label2id": {n: i for i, n in enumerate(labels)}}
        diff = save_model_dir(model.electra, tmp, tok, verify, "encoder", **extra)
        save_file({k: v.detach().contiguous() for k, v in model.classifier.state_dict().items()}, str(tmp / GLUE_HEAD))
        if verify:
            head["verified_max_abs_diff"] = diff
        write_json(tmp / "head.json", head)
        (tmp / "README.md").write_text(glue_head_readme(head))

    write_dir(out, write, force, source=run, source_name="the run being exported")
    return head


def _export_sequence_classifier(
    run: Path,
    out: str | os.PathLike,
    model: nn.Module,
    task: Any,
    config: dict[str, Any],
    tok: WordPiece,
    metrics: dict[str, Any],
    force: bool,
    verify: bool,
) -> dict[str, Any]:
    """A run finetuned with `head="transformers"`: an `ElectraForSequenceClassification` directory, which
    `pipeline("text-classification", model=DIR)` loads, with the label names in its config."""

    if task.is_regression:
        labels, problem = ["score"], "regression"
    else:
        labels = list(task.labels)
        problem = "multi_label_classification" if task.multilabel else "single_label_classification"
    record = {"format": "electra-sequence-classification", "class": "ElectraForSequenceClassification"}
    record |= {"head": "transformers (dense, GELU, out_proj on [CLS]), as trained", "task": task.name}
    record |= {"kind": task.kind, "problem_type": problem, "labels": labels}
    record["regression_scale"] = task.regression_max if task.is_regression else None
    record |= {"seed": config.get("seed"), "source": str(run.resolve()), "pretrained_model": config.get("model")}
    record["metrics"] = metrics.get("metrics", {})

    def write(tmp: Path) -> None:
        id2label = dict(enumerate(labels))
        extra = {"num_labels": len(labels), "id2label": id2label, "label2id": {n: i for i, n in id2label.items()}}
        hf = hf_class("sequence_classification")(hf_config(model.config, problem_type=problem, **extra))
        copy_state(model, hf, "export of the classifier")
        with quiet_transformers():
            hf.eval().save_pretrained(tmp)
        tok.save(tmp)
        if verify:
            record["verified_max_abs_diff"] = verify_export(tmp, model, "sequence_classification")
        write_json(tmp / "export.json", record)

    write_dir(out, write, force, source=run, source_name="the run being exported")
    return record
