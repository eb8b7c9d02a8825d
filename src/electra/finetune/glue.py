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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from electra.config import FinetuneConfig, ModelConfig, from_dict
from electra.errors import ElectraError
from electra.finetune.encoder import SequenceClassifier, build_model, per_example_loss
from electra.finetune.features import Features, SplitData, collate, double_unordered, featurize, load_split
from electra.finetune.fields import FinetuneFields
from electra.finetune.metrics import compute_metrics, dev_auc_fields, is_constant, majority_metrics
from electra.finetune.own import Kind, own_task, task_record
from electra.finetune.recipe import autocast, finetune_optimizer, fit, reduce_losses
from electra.finetune.results import load_runs, rank, save_predictions, write_prediction_csv, write_results
from electra.finetune.sweep import Encoder, Run, Sweep, TaskRuns, claimed
from electra.finetune.tasks import OwnFiles, Task, parse_tasks

if TYPE_CHECKING:
    from tqdm import tqdm
    from typing_extensions import Unpack

    from electra.model import ElectraModel
    from electra.tokenizer import WordPiece


TestPredictions = Literal["best", "all"]


def check_test_predictions(value: str) -> bool:
    """True for "all"; refuses anything but "best" and "all"."""
    if value not in ("best", "all"):
        raise ElectraError(f"test_predictions must be best or all, got {value!r}")
    return value == "all"


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


def predict(
    model: SequenceClassifier, features: Features, device: torch.device, cfg: FinetuneConfig, pad_id: int
) -> np.ndarray:
    """Model outputs (logits, or the regression value in units of y/5) for every row, in the features' order.

    Rows are batched `cfg.eval_batch_size` at a time shortest first, so that a batch pads little, under
    `torch.inference_mode()`; padding is masked out, so a row's outputs do not depend on its batch (up to float
    rounding)."""
    model.eval()
    order = np.argsort([len(q) for q in features.input_ids], kind="stable")
    out = np.zeros((len(features), model.num_outputs), np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), cfg.eval_batch_size):
            rows = order[start : start + cfg.eval_batch_size]
            b = collate(features, rows.tolist(), pad_id)
            with autocast(device, cfg.precision):
                y = model(b["input_ids"].to(device), b["attention_mask"].to(device), b["token_type_ids"].to(device))
            out[rows] = y.float().cpu().numpy().reshape(len(rows), -1)
    return out


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
    """Train one (task, seed) run; returns the model and its outputs on every dev split (`predict` gives the test
    splits' when they are wanted). `epoch_losses`, if given, receives the mean per-example training loss of each
    epoch."""
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

    lengths = [len(q) for q in data.train.input_ids]
    losses = fit(model, opt, len(data.train), cfg, seed, device, step_losses, progress, {"task": task.display}, lengths)
    if epoch_losses is not None:
        epoch_losses.extend(losses)
    return model, {name: predict(model, f, device, cfg, pad_id) for name, f in data.evals.items()}


def evaluate(task: Task, evals: dict[str, Features], outputs: dict[str, np.ndarray]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for split, feats in evals.items():
        labels = feats.labels
        outs = outputs[split]
        suffix = "" if split == "dev" else "_" + split.split("_", 1)[1]
        metrics.update(compute_metrics(task, outs, labels, suffix))
    return metrics


@dataclass
class GlueRuns(TaskRuns):
    """A GLUE task (or your own data's) in a sweep: the sequence classifier, GLUE's metrics, and each split's outputs
    as predictions_<split>.npz (your own test data: also .csv). The test splits are predicted by every run
    (`all_tests`) or only by a run that is the best on dev so far among the task's complete runs in `out`, so that
    the best run, the one a submission uses, always has them."""

    data: TaskData
    out: Path
    all_tests: bool = False

    def run(self, seed: int, progress: tqdm) -> Run:
        e, losses, data = self.encoder, [], self.data
        model, outputs = finetune_run(
            data, e.weights, e.config, self.cfg, seed, e.device, e.tokenizer.pad_id, progress, losses
        )
        metrics = evaluate(data.task, data.evals, outputs)
        if data.tests and (self.all_tests or self.best_so_far(seed, metrics)):
            outputs.update(
                {s: predict(model, f, e.device, self.cfg, e.tokenizer.pad_id) for s, f in data.tests.items()}
            )
        return Run(model, outputs, metrics, losses)

    def best_so_far(self, seed: int, metrics: dict[str, float]) -> bool:
        """Whether a run would rank first on dev among the task's complete runs (ties: the lower seed)."""
        task = self.data.task
        ranks = [rank(r, task) for r in load_runs(self.out, task)]
        return not ranks or rank({"metrics": metrics, "seed": seed}, task) > max(ranks)

    def write(self, directory: Path, seed: int, run: Run, config: dict[str, Any]) -> dict[str, Any]:
        data, task, outputs, metrics = self.data, self.data.task, run.outputs, run.metrics
        for split, feats in {**data.evals, **data.tests}.items():
            if split not in outputs:  # a test split this run did not predict
                continue
            labels = feats.labels if split in data.evals else None
            save_predictions(directory / f"predictions_{split}.npz", feats.index, outputs[split], labels)
            if task.files is not None and split in data.tests:  # your own data: the predictions beside the ids
                write_prediction_csv(directory / f"predictions_{split}.csv", task, feats.index, outputs[split])
        cap = self.cfg.max_train_examples
        dev = data.evals.get("dev")
        no_dev = {"dev_auc": None, "dev_auc_chance_band": None}
        return {
            "task": task.name,
            "seed": seed,
            "metrics": metrics,
            "score": metrics[task.score],
            # the floor to clear, and whether this run fell to it: one class (or one value) for every dev example
            "majority_metrics": majority_metrics(task, data.train.labels, dev.labels) if dev is not None else None,
            "constant_predictions": is_constant(task, outputs["dev"]) if dev is not None else None,
            # two-class tasks: how well the run orders the dev examples, and the band around 0.5 that is chance
            **(dev_auc_fields(task, outputs["dev"], dev.labels) if dev is not None else no_dev),
            "n_train": len(data.train),
            "n_train_available": data.n_train_available,
            "train_loss_per_epoch": config["train_loss_per_epoch"],
            # the cap only when it removed examples: a task smaller than the cap is not "subsampled"
            "max_train_examples": cap if cap is not None and cap < data.n_train_available else None,
        }


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
    test_predictions: TestPredictions = "best",
) -> dict[str, Any]:
    """Every pending (task, seed) run of this shard, then the aggregate results of all complete runs."""
    all_tests = check_test_predictions(test_predictions)
    by_name = {t.name: t for t in tasks}

    def prepare(name: str, encoder: Encoder) -> GlueRuns | None:
        t = by_name[name]
        task_cfg = cfg.resolve(encoder.config, t)
        encoder.check_length(task_cfg)
        data = prepare_task(t, glue_dir, encoder.tokenizer, task_cfg)
        if data is None:
            return None
        record = {
            "glue_dir": str(glue_dir) if glue_dir else "hub",
            **({"own_task": task_record(t), "files": asdict(t.files)} if t.files else {}),
            "n_train_available": data.n_train_available,
            "n_train": len(data.train),
            "skipped_rows": data.skipped_rows,
        }
        return GlueRuns(name, t.display, task_cfg, len(data.train), record, encoder, data, Path(out), all_tests)

    where = Sweep(Path(out), model, tokenizer, checkpoint, device, save_model, quiet, shard)
    where.run(list(by_name), range(seed, seed + runs), prepare, desc="finetune")
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
    test_predictions: TestPredictions = "best",
    **recipe: Unpack[FinetuneFields],
) -> dict[str, Any]:
    """Finetune `model` on GLUE `tasks` ("all", "cola,sst2" or a list), `runs` seeds each; what `electra finetune`
    does. `recipe`: `FinetuneConfig` fields that override the official recipe (learning_rate, epochs,
    max_train_examples, ...). Returns the aggregate results (also in OUT/results.json and OUT/results.md).
    `test_predictions`: "best" predicts a task's test splits only in a run that is the best on dev so far (the run
    `electra submit --pick best` uses); "all" in every run.

        from electra.api import finetune
        finetune("runs/tiny", "runs/glue", tasks="sst2,rte", glue_dir="glue_data", runs=3, epochs=3)
    """
    if runs < 1:
        raise ElectraError(f"--runs must be at least 1, got {runs}")
    check_test_predictions(test_predictions)
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
    with claimed(out, "finetuning sweep", lock=shard == (0, 1)):
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
            test_predictions=test_predictions,
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
    device: str = "auto",
    tokenizer: str | None = None,
    shard: tuple[int, int] = (0, 1),
    save_model: bool = False,
    quiet: bool = False,
    checkpoint: str = "latest",
    test_predictions: TestPredictions = "best",
    **recipe: Unpack[FinetuneFields],
) -> dict[str, Any]:
    """Finetune `model` on your own files, `runs` seeds; what `electra finetune --train ... --dev ...` does. The
    run options are `finetune`'s; `recipe`: `FinetuneConfig` fields (learning_rate, epochs, max_length, head, ...).
    Writes OUT/<name>/run_<seed>/ and OUT/results.{json,md}; with a test file, the best run's predictions_test.csv
    (every run's with `test_predictions="all"`) holds `id,prediction` rows. `name` (default: the kind) names OUT's
    task folder.

        from electra.api import finetune_own
        finetune_own("runs/tiny", "runs/reviews", train="train.csv", dev="dev.csv", text_column="review")
    """
    files = OwnFiles(train, dev, test, text_column, pair_column, label_column, id_column, label_separator)
    task = own_task(files, kind, labels, name)
    return finetune(
        model,
        out,
        [task],
        None,
        runs,
        seed,
        device=device,
        tokenizer=tokenizer,
        shard=shard,
        save_model=save_model,
        quiet=quiet,
        checkpoint=checkpoint,
        test_predictions=test_predictions,
        **recipe,
    )
