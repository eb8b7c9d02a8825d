"""`electra finetune`: finetune on GLUE tasks over many seeds, evaluate on dev, store test predictions.

One run = (task, seed) in `OUT/<task>/run_<seed>/` (layout in `electra.finetune.results`). Its metrics.json is
written last, so an interrupted sweep continues with the first incomplete run. Runs are independent: start one
process per GPU with `--device cuda:K --shard K/N` to spread a sweep.

The recipe, its optimizer and the training loop are `electra.finetune.recipe`'s (shared with tagging and SQuAD):
3 epochs here, 10 for RTE and STS-B.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from electra import __version__, io
from electra.config import FinetuneConfig, ModelConfig, from_dict
from electra.errors import ElectraError
from electra.finetune.encoder import SequenceClassifier, build_model, load_encoder, per_example_loss
from electra.finetune.features import Features, SplitData, collate, double_unordered, featurize, load_split
from electra.finetune.metrics import compute_metrics, dev_auc_fields, is_constant, majority_metrics
from electra.finetune.own import Kind, own_task, task_record
from electra.finetune.recipe import autocast, finetune_optimizer, fit, reduce_losses, train_steps
from electra.finetune.results import run_dir, save_predictions, write_prediction_csv, write_results
from electra.finetune.tasks import OwnFiles, Task, parse_tasks
from electra.io import write_json

if TYPE_CHECKING:
    from electra.model import ElectraModel
    from electra.tokenizer import WordPiece


# ---------------------------------------------------------------------------------------------- data per task


@dataclass
class TaskData:
    task: Task
    train: Features
    evals: dict[str, Features]  # dev splits, with labels
    tests: dict[str, Features]  # test splits (MNLI: test, test_mm, ax)
    n_train_available: int
    skipped_rows: int


def prepare_task(task: Task, glue_dir: str | Path | None, tokenizer: WordPiece, cfg: FinetuneConfig) -> TaskData | None:
    """Read and featurize a task's splits; None (with a notice) when its train or dev set is absent."""
    splits: dict[str, SplitData | None] = {}
    where = glue_dir if glue_dir is not None else "the hub"
    for needed in ("train", "dev"):  # first, so that a task without them costs nothing
        splits[needed] = load_split(task, needed, glue_dir)
        if splits[needed] is None:
            print(f"{task.display}: no {needed} set in {where}; task skipped", file=sys.stderr)
            return None
    splits.update({s.name: load_split(task, s.name, glue_dir) for s in task.splits if s.name not in splits})
    train = splits["train"].examples
    n_available = len(train)
    if cfg.max_train_examples is not None and cfg.max_train_examples < len(train):
        rng = random.Random(0)  # the same subset for every seed, so runs differ only in their seed
        train = [train[i] for i in sorted(rng.sample(range(len(train)), cfg.max_train_examples))]
    if cfg.double_unordered and task.double_unordered:
        train = double_unordered(train)
    feats = lambda s: featurize(task, s.examples, tokenizer, cfg.max_length)  # noqa: E731
    return TaskData(
        task=task,
        train=featurize(task, train, tokenizer, cfg.max_length),
        evals={s.name: feats(splits[s.name]) for s in task.dev_splits if splits[s.name] is not None},
        tests={s.name: feats(splits[s.name]) for s in task.test_splits if splits[s.name] is not None},
        n_train_available=n_available,
        skipped_rows=sum(s.skipped for s in splits.values() if s is not None),
    )


# ---------------------------------------------------------------------------------------------- one run


@torch.no_grad()
def predict(
    model: SequenceClassifier, features: Features, device: torch.device, cfg: FinetuneConfig, pad_id: int
) -> np.ndarray:
    """Model outputs (logits, or the regression value in units of y/5) for every row, in order."""
    model.eval()
    out = []
    for start in range(0, len(features), cfg.eval_batch_size):
        rows = range(start, min(start + cfg.eval_batch_size, len(features)))
        b = collate(features, rows, pad_id)
        with autocast(device, cfg.precision):
            y = model(b["input_ids"].to(device), b["attention_mask"].to(device), b["token_type_ids"].to(device))
        out.append(y.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_outputs), np.float32)


def finetune_run(
    data: TaskData,
    encoder: ElectraModel | None,
    model_cfg: ModelConfig,
    cfg: FinetuneConfig,
    seed: int,
    device: torch.device,
    pad_id: int,
    progress: tqdm | None = None,
    epoch_losses: list[float] | None = None,
) -> tuple[torch.nn.Module, dict[str, np.ndarray]]:
    """Train one (task, seed) run; returns the model and its outputs on every dev and test split.
    `epoch_losses`, if given, receives the mean per-example training loss of each epoch."""
    task = data.task
    model = build_model(
        encoder, cfg.encoder_config(model_cfg), task.num_outputs, cfg.head_dropout, init_seed=seed, head=cfg.head
    )
    model = model.to(device)
    opt = finetune_optimizer(model, model_cfg.num_hidden_layers, cfg, device)

    def step_losses(rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        b = {k: v.to(device) for k, v in collate(data.train, rows, pad_id).items()}
        with autocast(device, cfg.precision):
            outputs = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        losses = per_example_loss(outputs, b["labels"], task.kind)
        return reduce_losses(losses, cfg), losses.detach().sum(), len(rows)

    losses = fit(model, opt, len(data.train), cfg, seed, device, step_losses, progress, {"task": task.display})
    if epoch_losses is not None:
        epoch_losses.extend(losses)
    outputs = {name: predict(model, f, device, cfg, pad_id) for name, f in {**data.evals, **data.tests}.items()}
    return model, outputs


def evaluate(task: Task, evals: dict[str, Features], outputs: dict[str, np.ndarray]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for split, feats in evals.items():
        labels = feats.labels
        outs = outputs[split]
        suffix = "" if split == "dev" else "_" + split.split("_", 1)[1]
        metrics.update(compute_metrics(task, outs, labels, suffix))
    return metrics


def save_run(
    out: Path,
    data: TaskData,
    seed: int,
    outputs: dict[str, np.ndarray],
    metrics: dict[str, float],
    config: dict[str, Any],
    model: torch.nn.Module | None = None,
) -> None:
    """Predictions and config first, metrics.json last (it marks the run complete)."""
    d = run_dir(out, data.task, seed)
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", config)
    for split, feats in {**data.evals, **data.tests}.items():
        labels = feats.labels if split in data.evals else None
        save_predictions(d / f"predictions_{split}.npz", feats.index, outputs[split], labels)
        if data.task.files is not None and split in data.tests:  # your own data: the predictions beside the ids
            write_prediction_csv(d / f"predictions_{split}.csv", data.task, feats.index, outputs[split])
    if model is not None:
        io.write_safetensors(d / "model.safetensors", model.state_dict())
    cap = config["finetune"]["max_train_examples"]
    dev = data.evals.get("dev")
    no_dev = {"dev_auc": None, "dev_auc_chance_band": None}
    ranking = dev_auc_fields(data.task, outputs["dev"], dev.labels) if dev is not None else no_dev
    write_json(
        d / "metrics.json",
        {
            "task": data.task.name,
            "seed": seed,
            "metrics": metrics,
            "score": metrics[data.task.score],
            # the floor to clear, and whether this run fell to it: one class (or one value) for every dev example
            "majority_metrics": majority_metrics(data.task, data.train.labels, dev.labels) if dev is not None else None,
            "constant_predictions": is_constant(data.task, outputs["dev"]) if dev is not None else None,
            # two-class tasks: how well the run orders the dev examples, and the band around 0.5 that is chance
            **ranking,
            "n_train": len(data.train),
            "n_train_available": data.n_train_available,
            "train_loss_per_epoch": config.get("train_loss_per_epoch"),
            # the cap only when it removed examples: a task smaller than the cap is not "subsampled"
            "max_train_examples": cap if cap is not None and cap < data.n_train_available else None,
        },
    )


# ---------------------------------------------------------------------------------------------- sweep


def sweep(
    model: str,
    tasks: list[Task],
    out: str | Path,
    glue_dir: str | Path | None,
    *,
    runs: int,
    seed: int,
    cfg: FinetuneConfig,
    device: str = "auto",
    tokenizer: str | None = None,
    shard: tuple[int, int] = (0, 1),
    save_model: bool = False,
    quiet: bool = False,
    checkpoint: str = "latest",
) -> dict[str, Any]:
    """Every pending (task, seed) run of this shard, then the aggregate results of all complete runs."""
    out = Path(out)
    seeds = list(range(seed, seed + runs))
    plan = [(t, s) for t in tasks for s in seeds]
    plan = [p for i, p in enumerate(plan) if i % shard[1] == shard[0]]
    pending = [(t, s) for t, s in plan if not (run_dir(out, t, s) / "metrics.json").is_file()]
    if len(pending) < len(plan) and not quiet:
        print(f"{len(plan) - len(pending)} of {len(plan)} runs already complete in {out}; continuing", file=sys.stderr)
    if pending:
        dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        encoder, model_cfg, tok = load_encoder(model, tokenizer, checkpoint)
        if cfg.max_length > model_cfg.max_position_embeddings:
            raise ElectraError(
                f"max_length {cfg.max_length} exceeds the model's {model_cfg.max_position_embeddings} positions"
            )
        by_task: dict[str, list[int]] = {}
        for t, s in pending:
            by_task.setdefault(t.name, []).append(s)
        prepared = {}
        for t in tasks:
            if t.name in by_task:
                task_cfg = cfg.resolve(model_cfg, t)
                data = prepare_task(t, glue_dir, tok, task_cfg)
                if data is not None:
                    prepared[t.name] = (data, task_cfg)
        total = sum(
            train_steps(len(prepared[t][0].train), prepared[t][1]) * len(s) for t, s in by_task.items() if t in prepared
        )
        with tqdm(total=total, desc="finetune", unit="step", disable=quiet, file=sys.stderr) as bar:
            for t, s in pending:
                if t.name not in prepared:
                    continue
                data, task_cfg = prepared[t.name]
                started = time.time()
                epoch_losses: list[float] = []
                trained, outputs = finetune_run(
                    data, encoder, model_cfg, task_cfg, s, dev, tok.pad_id, bar, epoch_losses
                )
                metrics = evaluate(t, data.evals, outputs)
                config = {
                    "task": t.name,
                    "seed": s,
                    "model": model,
                    "checkpoint": checkpoint,
                    "model_config": asdict(model_cfg),
                    "finetune": asdict(task_cfg),
                    "glue_dir": str(glue_dir) if glue_dir else "hub",
                    **({"own_task": task_record(t), "files": asdict(t.files)} if t.files else {}),
                    "tokenizer": tok.source,
                    "tokenizer_fingerprint": tok.fingerprint(),
                    "n_train_available": data.n_train_available,
                    "n_train": len(data.train),
                    "skipped_rows": data.skipped_rows,
                    "device": str(dev),
                    "electra_version": __version__,
                    "seconds": round(time.time() - started, 1),
                    "train_loss_per_epoch": [round(x, 6) for x in epoch_losses],
                }
                save_run(out, data, s, outputs, metrics, config, trained if save_model else None)
                if not quiet:
                    shown = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
                    bar.write(f"{t.display} seed {s}: {shown}")
    return write_results(out, model, tasks)


# ---------------------------------------------------------------------------------------------- API


def finetune(
    model: str,
    out: str | Path,
    tasks: str | list[str] | list[Task] = "all",
    glue_dir: str | Path | None = None,
    runs: int = 10,
    seed: int = 0,
    *,
    device: str = "auto",
    tokenizer: str | None = None,
    shard: tuple[int, int] = (0, 1),
    save_model: bool = False,
    quiet: bool = False,
    checkpoint: str = "latest",
    **recipe: Any,
) -> dict[str, Any]:
    """Finetune `model` on GLUE `tasks` ("all", "cola,sst2" or a list), `runs` seeds each; what `electra finetune`
    does. `recipe`: `FinetuneConfig` fields that override the official recipe (learning_rate, epochs,
    max_train_examples, ...). Returns the aggregate results (also in OUT/results.json and OUT/results.md).

        from electra.api import finetune
        finetune("runs/tiny", "runs/glue", tasks="sst2,rte", glue_dir="glue_data", runs=3, epochs=3)
    """
    if runs < 1:
        raise ElectraError(f"--runs must be at least 1, got {runs}")
    if glue_dir is not None and not Path(glue_dir).is_dir():
        raise ElectraError(f"--glue-dir {glue_dir} is not a directory")
    cfg = from_dict(FinetuneConfig, recipe, "the finetuning options")
    if isinstance(tasks, list) and all(isinstance(t, Task) for t in tasks):
        task_list = list(tasks)  # your own data (electra.finetune.own)
    else:
        task_list = parse_tasks(tasks if isinstance(tasks, str) else ",".join(tasks))
    if glue_dir is None and any(t.glue for t in task_list):
        # GLUE from the hub: say so now if it cannot be reached, before anything is written
        from electra import hub
        from electra.finetune.features import HUB_DATASET

        hub.require(HUB_DATASET, "GLUE dataset (no --glue-dir given)")
    out = Path(out)
    # one writer per sweep; --shard processes write disjoint runs of one sweep and share its directory
    finished_runs = lambda d: any(d.glob("*/run_*/metrics.json"))  # noqa: E731
    with io.claimed(out, "finetuning sweep", lock=shard == (0, 1), worth_keeping=finished_runs) as lock:
        if lock is not None:  # what a killed sweep left half-written (complete runs have metrics.json)
            for tmp in out.glob("**/.*.tmp"):
                tmp.unlink(missing_ok=True)
        results = sweep(
            model,
            task_list,
            out,
            glue_dir,
            runs=runs,
            seed=seed,
            cfg=cfg,
            device=device,
            tokenizer=tokenizer,
            shard=shard,
            save_model=save_model,
            quiet=quiet,
            checkpoint=checkpoint,
        )
        if not results["tasks"]:
            raise ElectraError("no task could be finetuned (no train and dev sets found)")
    return results


def finetune_own(
    model: str,
    out: str | Path,
    *,
    train: str,
    dev: str,
    test: str | None = None,
    kind: Kind = "classification",
    text_column: str = "text",
    pair_column: str | None = None,
    label_column: str = "label",
    labels: list[str] | None = None,
    id_column: str | None = None,
    label_separator: str = ",",
    name: str | None = None,
    runs: int = 1,
    seed: int = 0,
    **options: Any,
) -> dict[str, Any]:
    """Finetune `model` on your own files, `runs` seeds; what `electra finetune --train ... --dev ...` does.
    `options`: those of `electra.finetune.glue.finetune` (device, save_model, quiet, ...) and recipe fields
    (learning_rate, epochs, max_length, head, ...). Writes OUT/<name>/run_<seed>/ and OUT/results.{json,md}; with a
    test file, each run's predictions_test.csv holds `id,prediction` rows. `name` (default: the kind) names OUT's
    task folder.

        from electra.api import finetune_own
        finetune_own("runs/tiny", "runs/reviews", train="train.csv", dev="dev.csv", text_column="review")
    """
    files = OwnFiles(train, dev, test, text_column, pair_column, label_column, id_column, label_separator)
    return finetune(model, out, [own_task(files, kind, labels, name)], None, runs, seed, **options)
