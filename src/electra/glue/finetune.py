"""`electra finetune`: finetune on GLUE tasks over many seeds, evaluate on dev, store test predictions.

One run = (task, seed) in `OUT/<task>/run_<seed>/` (layout in `electra.glue.results`). Its metrics.json is
written last, so an interrupted sweep continues with the first incomplete run. Runs are independent: start one
process per GPU with `--device cuda:K --shard K/N` to spread a sweep.

Recipe (paper Table 7, docs/faithfulness.md §6): Adam without bias correction (eps 1e-6), weight decay 0, warmup 10 %
of the steps with the official schedule shape (step 0 has lr 0), clip 1.0, batch 32, layer-wise LR decay 0.8 (0.9 for
24 layers), lr 3e-4 / 1e-4 / 5e-5 by size, 3 epochs (10 for RTE and STS-B), batch loss = sum over examples.
"""

from __future__ import annotations

import dataclasses
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from electra import __version__, io
from electra.config import ModelConfig, _check_literals, from_dict
from electra.errors import ConfigError, ElectraError
from electra.glue.data import Features, SplitData, collate, double_unordered, featurize, load_split
from electra.glue.layer_decay import layer_lr_multipliers
from electra.glue.metrics import compute_metrics, is_constant, majority_metrics
from electra.glue.model import SequenceClassifier, build_model, load_encoder, per_example_loss
from electra.glue.own import task_record
from electra.glue.results import run_dir, save_predictions, write_prediction_csv, write_results
from electra.glue.tasks import Task, parse_tasks
from electra.io import write_json
from electra.optim import AdamW, lr_factor, param_groups, set_group_lrs

if TYPE_CHECKING:
    from electra.model import ElectraModel
    from electra.tokenizer import WordPiece


@dataclass
class FinetuneConfig:
    """The finetuning recipe; None means "by model size / by task" as resolved in `resolve`."""

    learning_rate: float | None = None  # 3e-4 Small (H <= 256), 1e-4 Base (H <= 768), 5e-5 Large
    layerwise_lr_decay: float | None = None  # 0.8 Small/Base, 0.9 Large (24 layers); 1.0 switches it off
    layer_decay_mode: Literal["official", "paper"] = "official"  # official keeps the off-by-one (faithfulness §5.3)
    weight_decay: float = 0.0  # paper Table 7 (the official code's default is 0.01)
    warmup_proportion: float = 0.1
    batch_size: int = 32
    eval_batch_size: int = 64
    epochs: int | None = None  # 3; 10 for RTE and STS-B
    max_length: int = 128  # 512 for the "++" checkpoints as in richarddwang/electra_pytorch
    loss_reduction: Literal["sum", "mean"] = "sum"  # sum: official; mean: richarddwang/electra_pytorch
    max_grad_norm: float = 1.0
    head_dropout: float = 0.1
    head: Literal["official", "transformers"] = "official"  # transformers: exports as ElectraForSequenceClassification
    double_unordered: bool = True  # MRPC and STS-B train only
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    adam_bias_correction: bool = False
    schedule: Literal["official", "warmup_then_decay"] = "official"
    max_train_examples: int | None = None  # subsample train (fixed subset, the same for every seed)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast on CUDA

    def __post_init__(self):
        if self.batch_size <= 0 or self.eval_batch_size <= 0:
            raise ConfigError("batch_size and eval_batch_size must be positive")
        if not 0 <= self.warmup_proportion <= 1:
            raise ConfigError(f"warmup_proportion must be in [0, 1], got {self.warmup_proportion}")
        if self.max_train_examples is not None and self.max_train_examples <= 0:
            raise ConfigError("max_train_examples must be positive")
        _check_literals(self)

    def resolve(self, model: ModelConfig, task: Task) -> FinetuneConfig:
        """A copy with every size- and task-dependent default filled in."""
        return self.with_defaults(model, task.epochs)

    def with_defaults(self, model: ModelConfig, epochs: int) -> FinetuneConfig:
        """A copy with the size-dependent defaults filled in (paper Table 7: the learning rate by hidden size,
        layer-wise decay 0.9 for 24 layers, else 0.8) and `epochs` unless set: for GLUE the task's, for tagging and
        SQuAD theirs."""
        lr = self.learning_rate
        if lr is None:
            lr = 3e-4 if model.hidden_size <= 256 else 1e-4 if model.hidden_size <= 768 else 5e-5
        decay = self.layerwise_lr_decay
        if decay is None:
            decay = 0.9 if model.num_hidden_layers >= 24 else 0.8
        return dataclasses.replace(
            self,
            learning_rate=lr,
            layerwise_lr_decay=decay,
            epochs=self.epochs if self.epochs is not None else epochs,
        )


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


def autocast(device: torch.device, precision: str) -> torch.autocast:
    enabled = precision == "bf16" and device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


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


def train_steps(n_train: int, cfg: FinetuneConfig) -> int:
    """T = ceil(n / batch) * epochs (docs/faithfulness.md §6.2: the train set padded to a whole number of batches)."""
    return math.ceil(n_train / cfg.batch_size) * cfg.epochs


def finetune_optimizer(
    model: torch.nn.Module,
    num_layers: int,
    cfg: FinetuneConfig,
    device: torch.device,
    head_prefixes: tuple[str, ...] = ("classifier.",),
) -> AdamW:
    """The recipe's Adam (no bias correction by default) with layer-wise learning-rate decay: the encoder's
    parameters are named `electra.*`, the task head's start with one of `head_prefixes`. Set the learning rate of
    each step with `set_group_lrs(opt, cfg.learning_rate * lr_factor(...))` as `finetune_run` does."""
    names = [n for n, _ in model.named_parameters()]
    scale = layer_lr_multipliers(names, num_layers, cfg.layerwise_lr_decay, cfg.layer_decay_mode, head_prefixes)
    groups = param_groups(model.named_parameters(), cfg.weight_decay, lr_scale=scale.__getitem__)
    return AdamW(
        groups,
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_epsilon,
        weight_decay=cfg.weight_decay,
        bias_correction=cfg.adam_bias_correction,
        fused=device.type == "cuda",
    )


def reduce_losses(losses: torch.Tensor, cfg: FinetuneConfig) -> torch.Tensor:
    """The batch loss from per-example losses: their sum (official) or mean (`loss_reduction`)."""
    return losses.sum() if cfg.loss_reduction == "sum" else losses.mean()


def fit(
    model: torch.nn.Module,
    opt: AdamW,
    n: int,
    cfg: FinetuneConfig,
    seed: int,
    device: torch.device,
    step_losses: Callable[[list[int]], tuple[torch.Tensor, torch.Tensor, int]],
    progress: tqdm | None = None,
    describe: dict[str, str] | None = None,
) -> list[float]:
    """The finetuning loop of every task: `cfg.epochs` passes over `n` training rows in a new seeded order each
    epoch, batches of `cfg.batch_size` (the last one short: as the official padding rows with zero loss), the
    recipe's warm-up and decay, clipping, one optimizer step per batch. `step_losses(rows)` returns the loss to
    minimise, its summed per-row value and the number of rows (or words) it covers; returns each epoch's mean."""
    total = train_steps(n, cfg)
    warmup = cfg.warmup_proportion * total
    shuffle = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    step = 0
    epoch_losses = []
    model.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=shuffle).tolist()  # a new order every epoch
        loss_sum, count = torch.zeros((), device=device), 0
        for start in range(0, n, cfg.batch_size):
            set_group_lrs(opt, cfg.learning_rate * lr_factor(step, total, warmup, 1.0, cfg.schedule))
            loss, summed, k = step_losses(order[start : start + cfg.batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            loss_sum += summed
            count += k
            step += 1
            if progress is not None:
                progress.update(1)
                if describe is not None and step % 20 == 1:  # (reading the loss waits for the GPU: not every step)
                    progress.set_postfix(**describe, seed=seed, loss=f"{summed.item() / max(k, 1):.3f}", refresh=False)
        epoch_losses.append(loss_sum.item() / max(count, 1))
    return epoch_losses


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
    model = build_model(encoder, model_cfg, task.num_outputs, cfg.head_dropout, init_seed=seed, head=cfg.head)
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
        task_list = list(tasks)  # your own data (electra.glue.own)
    else:
        task_list = parse_tasks(tasks if isinstance(tasks, str) else ",".join(tasks))
    if glue_dir is None and any(t.glue for t in task_list):
        # GLUE from the hub: say so now if it cannot be reached, before anything is written
        from electra import hub
        from electra.glue.data import HUB_DATASET

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
