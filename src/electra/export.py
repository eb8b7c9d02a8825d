"""`electra export`: a pretraining run, or a finetuned GLUE run, as `transformers` model directories.

    electra export RUN_DIR --out DIR [--checkpoint latest|25%|step_N]
        DIR/discriminator/   ElectraForPreTraining  (config.json, model.safetensors, vocab.txt, tokenizer.json, ...)
        DIR/generator/       ElectraForMaskedLM     (the same files)
        DIR/export.json      where the weights came from (run, checkpoint, step, config)
      A run with `remove_top_word_direction` (`tiny` before it froze its word table) exports its discriminator with
      the top direction of its word table's movement undone, as finetuning loads it; the generator as trained.

    electra export SWEEP/<task>/run_<seed> --out DIR      (a run of `electra finetune --save-model`)
        DIR/                 ElectraModel (the finetuned encoder) + tokenizer; config.json carries id2label
        DIR/classifier.safetensors, DIR/head.json, DIR/README.md   the task head and how to apply it
      or, for a run finetuned with `--head transformers`:
        DIR/                 ElectraForSequenceClassification (+ tokenizer): pipeline("text-classification")
      (tagging and SQuAD runs: electra.tagging.export, electra.qa.export)

The key map is the identity (`electra.hf`); after writing, the export is loaded back with `from_pretrained` and its
outputs are compared with ours on a padded batch (`--no-verify` skips this). DIR is written into a temporary
directory next to it and renamed into place; an existing non-empty DIR is replaced only with `--force`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from electra.errors import ElectraError
from electra.hf import copy_state, hf_class, load_weights, quiet_transformers, to_hf
from electra.io import write_dir, write_json
from electra.tokenizer import WordPiece, load_tokenizer

if TYPE_CHECKING:
    from electra.config import PretrainConfig
    from electra.glue.model import SequenceClassifier
    from electra.glue.tasks import Task

VERIFY_TOLERANCE = 1e-4  # max |ours - transformers| accepted by the self-check (fp32; typically ~1e-6)
GLUE_HEAD = "classifier.safetensors"


# ---------------------------------------------------------------------------------------------- helpers


def _probe_batch(vocab_size: int, max_positions: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Two random sequences, the second padded, with both token types: what the self-check runs."""
    g = torch.Generator().manual_seed(seed)
    L = min(16, max_positions)
    ids = torch.randint(vocab_size, (2, L), generator=g)
    mask = torch.ones_like(ids)
    mask[1, L // 2 :] = 0
    types = torch.zeros_like(ids)
    types[:, L // 4 :] = 1
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": types * mask}


def _hf_outputs(hf_model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    out = hf_model(**batch)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


@torch.no_grad()
def verify_export(directory: Path, ours: nn.Module, kind: str) -> float:
    """Load `directory` with transformers (no missing or unexpected keys allowed) and return the largest absolute
    difference between its outputs and `ours` on a padded probe batch (padded positions excluded)."""
    cls = hf_class(kind)
    with quiet_transformers():
        hf, info = cls.from_pretrained(str(directory), output_loading_info=True)
    bad = {k: [n for n in v if not n.endswith("position_ids")] for k, v in info.items() if k != "error_msgs"}
    if any(bad.values()) or info.get("error_msgs"):
        raise ElectraError(f"export {directory}: transformers reports {bad} {info.get('error_msgs') or ''}".strip())
    batch = _probe_batch(ours.config.vocab_size, ours.config.max_position_embeddings)
    mine = ours.eval()(**batch)
    theirs = _hf_outputs(hf.eval(), batch)
    real = batch["attention_mask"].bool()
    if mine.shape[:2] != real.shape:  # one output per sequence (a classifier): every row counts
        real = torch.ones(mine.shape[0], dtype=torch.bool)
    diff = (mine.float() - theirs.float()).abs()[real].max().item()
    if not diff <= VERIFY_TOLERANCE:
        raise ElectraError(f"export {directory}: transformers computes outputs that differ from ours by {diff:.3g}")
    return diff


def _save_model_dir(
    module: nn.Module, directory: Path, tokenizer: WordPiece, verify: bool, kind: str, **config_extra
) -> float | None:
    with quiet_transformers():
        to_hf(module, **config_extra).save_pretrained(directory)
    tokenizer.save(directory)
    return verify_export(directory, module, kind) if verify else None


# ---------------------------------------------------------------------------------------------- pretraining runs


def export_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    checkpoint: str = "latest",
    force: bool = False,
    verify: bool = True,
) -> dict[str, Any]:
    """Export a pretraining run's discriminator and generator; returns what export.json records."""
    from electra.checkpoint import read_json, resolve_checkpoint

    model, cfg, tokenizer = _load_run(run_dir, checkpoint)
    ckpt_dir = resolve_checkpoint(run_dir, checkpoint)
    state = (
        read_json(ckpt_dir / "trainer_state.json", "trainer state")
        if (ckpt_dir / "trainer_state.json").is_file()
        else {}
    )
    if cfg.objective != "electra":
        raise ElectraError(f"run {run_dir} was trained with objective {cfg.objective!r}: it has no discriminator")
    record: dict[str, Any] = {
        "format": "electra-export",
        "source": str(Path(run_dir).resolve()),
        "checkpoint": str(checkpoint),
        "checkpoint_dir": ckpt_dir.name,
        "step": state.get("step"),
        "config": cfg.to_dict(),
        "tokenizer_fingerprint": tokenizer.fingerprint(),
        "discriminator": "ElectraForPreTraining",
        "generator": "ElectraForMaskedLM",
    }

    disc_model = model
    if cfg.remove_top_word_direction:  # the discriminator as the run delivers it (electra.loading.load_model)
        disc_model = copy.deepcopy(model)
        record["top_word_direction_removed"] = disc_model.remove_top_word_direction()

    def write(tmp: Path) -> None:
        diffs = {
            "discriminator": _save_model_dir(
                disc_model.discriminator, tmp / "discriminator", tokenizer, verify, "discriminator"
            ),
            "generator": _save_model_dir(model.generator, tmp / "generator", tokenizer, verify, "generator"),
        }
        if verify:
            record["verified_max_abs_diff"] = diffs
        write_json(tmp / "export.json", record)

    write_dir(out, write, force, source=run_dir, source_name="the run being exported")
    return record


def _load_run(run_dir: str | os.PathLike, checkpoint: str | int) -> tuple[nn.Module, PretrainConfig, WordPiece]:
    from electra.checkpoint import load_run

    return load_run(run_dir, checkpoint)


# ---------------------------------------------------------------------------------------------- GLUE runs


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

    from electra.config import ModelConfig, from_dict
    from electra.glue.model import SequenceClassifier
    from electra.glue.own import task_from_record
    from electra.glue.tasks import TASKS

    run = Path(run)
    config = json.loads((run / "config.json").read_text())
    weights = run / "model.safetensors"
    if not weights.is_file():
        raise ElectraError(
            f"{_kind(config)} {run} has no model.safetensors: finetune with --save-model to keep the weights"
        )
    if "own_task" in config:  # your own data (electra.glue.own)
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
    head = {
        "format": "electra-glue-head",
        "task": task.name,
        "display": task.display,
        "seed": config.get("seed"),
        "labels": labels,
        "id2label": {i: name for i, name in enumerate(labels)},
        "num_outputs": task.num_outputs,
        "regression": task.is_regression,
        "regression_max": task.regression_max if task.is_regression else None,
        "multilabel": task.multilabel,
        "hidden_size": model.config.hidden_size,
        "dropout": model.dropout.p,
        "input": "hidden state of [CLS]",
        "weights": GLUE_HEAD,
        "source": str(run.resolve()),
        "pretrained_model": config.get("model"),
        "metrics": metrics.get("metrics", {}),
        "example": '"a sentence", "a second sentence"' if task.text_b else '"a sentence"',
    }

    def write(tmp: Path) -> None:
        extra = {"id2label": head["id2label"], "label2id": {n: i for i, n in enumerate(labels)}}
        diff = _save_model_dir(model.electra, tmp, tok, verify, "encoder", **extra)
        save_file(
            {
                "weight": model.classifier.weight.detach().contiguous(),
                "bias": model.classifier.bias.detach().contiguous(),
            },
            str(tmp / GLUE_HEAD),
        )
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
    from electra.hf import hf_class, hf_config

    if task.is_regression:
        labels, problem = ["score"], "regression"
    else:
        labels = list(task.labels)
        problem = "multi_label_classification" if task.multilabel else "single_label_classification"
    record = {
        "format": "electra-sequence-classification",
        "class": "ElectraForSequenceClassification",
        "head": "transformers (dense, GELU, out_proj on [CLS]), as trained",
        "task": task.name,
        "kind": task.kind,
        "problem_type": problem,
        "labels": labels,
        "regression_scale": task.regression_max if task.is_regression else None,
        "seed": config.get("seed"),
        "source": str(run.resolve()),
        "pretrained_model": config.get("model"),
        "metrics": metrics.get("metrics", {}),
    }

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


# ---------------------------------------------------------------------------------------------- CLI


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="RUN_DIR",
        help="a pretraining run directory (or one of its checkpoint directories), or a finetuning run "
        "SWEEP/<task>/run_<seed> (GLUE, your own data, tagging, squad11/squad20) finetuned with --save-model",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (written atomically)")
    parser.add_argument(
        "--checkpoint",
        default="latest",
        help="pretraining runs: latest (default), a kept fraction (6.25%%, 12.5%%, 25%%, 50%%, 100%%) or step_N",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing non-empty --out directory")
    parser.add_argument(
        "--tokenizer",
        metavar="SRC",
        help="GLUE runs: the tokenizer (vocab file, directory or hub id) if the run's own cannot be found any more",
    )
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip loading the export back with transformers and comparing its outputs with ours",
    )


def run_export(args: argparse.Namespace) -> int:
    from electra.api import export

    record = export(
        args.source,
        args.out,
        checkpoint=args.checkpoint,
        force=args.force,
        verify=args.verify,
        tokenizer=args.tokenizer,
    )
    if "class" in record:  # a finetuned model of a transformers class
        labels = f", labels {', '.join(record['labels'])}" if record.get("labels") else ""
        print(f"exported {args.source} to {args.out} ({record['class']}{labels})")
    elif "labels" in record:  # a GLUE run: encoder + head
        print(
            f"exported {record['display']} run {args.source} to {args.out} (ElectraModel + {GLUE_HEAD}, labels "
            f"{', '.join(record['labels'])})"
        )
    else:
        what = f"{record['checkpoint_dir']} (step {record['step']})"
        print(
            f"exported {args.source} {what} to {args.out}/discriminator (ElectraForPreTraining) and "
            f"{args.out}/generator (ElectraForMaskedLM)"
        )
    if args.verify:
        print("verified: transformers' from_pretrained loads every weight and computes our outputs")
    return 0
