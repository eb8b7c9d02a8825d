"""The one sweep loop of every finetuning task: GLUE and your own data, SQuAD and tagging.

A sweep is its tasks x seeds, one run each in `OUT/<task>/run_<seed>/`: config.json first (the common run record and
what the task adds), the task's predictions, model.safetensors with `save_model`, and metrics.json last: its presence
marks the run complete, and a sweep started again skips complete runs. `shard=(K, N)` keeps every N-th run from the
K-th, so that N processes (one per GPU) share one sweep; the unsharded sweep is its directory's one writer
(`claimed`). The encoder is read once per sweep, and only when a run is pending.

What differs between the kinds of task is their `TaskRuns`, prepared once per task of a sweep by the kind's
`prepare(name, encoder)`: the task's data featurised for the encoder, the resolved recipe, how one run trains and is
evaluated (the model head, the metrics), and what files it writes.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from tqdm.auto import tqdm

from electra import __version__, io
from electra.config import FinetuneConfig, ModelConfig
from electra.errors import ElectraError
from electra.finetune.encoder import load_encoder
from electra.finetune.recipe import train_steps

if TYPE_CHECKING:
    from electra.model import ElectraModel
    from electra.tokenizer import WordPiece


@dataclass
class Encoder:
    """What a sweep finetunes, read once: the pretrained encoder (None: randomly initialised, the no-pretraining
    baseline), its config and tokenizer, and the device its runs train on."""

    weights: ElectraModel | None
    config: ModelConfig
    tokenizer: WordPiece
    device: torch.device

    def check_length(self, cfg: FinetuneConfig) -> None:
        """Refuse a recipe whose sequences are longer than the encoder has positions for."""
        n = self.config.max_position_embeddings
        if cfg.max_length > n:
            raise ElectraError(
                f"max_length {cfg.max_length} exceeds the model's {n} positions; pass max_length={n} or less"
            )


@dataclass
class Run:
    """One trained run: the model, its outputs (what `TaskRuns.write` writes), its metrics and each epoch's mean
    training loss."""

    model: torch.nn.Module
    outputs: Any
    metrics: dict[str, float]
    losses: list[float]


@dataclass
class TaskRuns:
    """One task of a sweep, prepared for the encoder. A kind of task subclasses it with its data, `run` (its model
    head, training and metrics) and `write` (its prediction files)."""

    name: str  # its folder in OUT, and the run record's "task"
    display: str  # how progress lines name it
    cfg: FinetuneConfig  # the recipe, resolved for this encoder and task
    n_train: int  # training rows per epoch (for the progress bar)
    record: dict[str, Any]  # what the task adds to the run record (config.json): its data
    encoder: Encoder
    shown: ClassVar[tuple[str, ...] | None] = None  # the metrics a progress line shows (None: all)
    saves_tokenizer: ClassVar[bool] = False  # save_model also writes the tokenizer (tokenizer/) beside the weights

    def run(self, seed: int, progress: tqdm) -> Run:
        """Train a fresh model (its head seeded by `seed`) and evaluate it."""
        raise NotImplementedError

    def write(self, directory: Path, seed: int, run: Run, config: dict[str, Any]) -> dict[str, Any]:
        """Write the run's predictions into `directory`; return its metrics.json record."""
        raise NotImplementedError


Prepare = Callable[[str, Encoder], TaskRuns | None]  # a kind's task, by name; None: skipped (with a notice)


def run_dir(out: Path, task: str, seed: int) -> Path:
    return out / task / f"run_{seed}"


@contextlib.contextmanager
def claimed(out: Path, what: str, lock: bool = True) -> Iterator[None]:
    """`with claimed(out, "tagging sweep"):` -- write `out` as its one writer (`lock`; sharded sweeps share the
    directory without it), first removing what a killed sweep left half-written. A failed start in a directory it
    created leaves nothing behind, unless a run was completed there."""
    finished = lambda d: any(d.glob("*/run_*/metrics.json"))  # noqa: E731
    with io.claimed(out, what, lock=lock, worth_keeping=finished) as held:
        if held is not None:  # complete runs have their metrics.json; a temporary file is nobody's
            for tmp in out.glob("**/.*.tmp"):
                tmp.unlink(missing_ok=True)
        yield


@dataclass
class Sweep:
    """Where a sweep writes and what it finetunes: the run options every kind of task takes."""

    out: Path
    model: str
    tokenizer: str | None = None
    checkpoint: str = "latest"
    device: str = "auto"
    save_model: bool = False
    quiet: bool = False
    shard: tuple[int, int] = (0, 1)

    def run(self, names: Sequence[str], seeds: Sequence[int], prepare: Prepare, desc: str) -> None:
        """Every pending run of this shard of `names` x `seeds`, task by task (`desc` names the progress bar)."""
        plan = [(n, s) for n in names for s in seeds]
        plan = [p for i, p in enumerate(plan) if i % self.shard[1] == self.shard[0]]
        pending = [(n, s) for n, s in plan if not (run_dir(self.out, n, s) / "metrics.json").is_file()]
        if len(pending) < len(plan) and not self.quiet:
            done = len(plan) - len(pending)
            print(f"{done} of {len(plan)} runs already complete in {self.out}; continuing", file=sys.stderr)
        if not pending:
            return
        auto = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(auto if self.device == "auto" else self.device)
        encoder = Encoder(*load_encoder(self.model, self.tokenizer, self.checkpoint), device)
        tasks = {n: prepare(n, encoder) for n in dict.fromkeys(n for n, _ in pending)}
        runs = [(tasks[n], s) for n, s in pending if tasks[n] is not None]
        total = sum(train_steps(task.n_train, task.cfg) for task, _ in runs)
        with tqdm(total=total, desc=desc, unit="step", disable=self.quiet, file=sys.stderr) as bar:
            for task, seed in runs:
                metrics = self.one(task, seed, bar)
                if not self.quiet:
                    shown = ", ".join(f"{k} {metrics[k]:.2f}" for k in task.shown or metrics)
                    bar.write(f"{task.display} seed {seed}: {shown}")

    def one(self, task: TaskRuns, seed: int, bar: tqdm) -> dict[str, float]:
        """Train, evaluate and write one run: config.json, the task's predictions, the weights, metrics.json."""
        started = time.time()
        run = task.run(seed, bar)
        tok = task.encoder.tokenizer
        config = {
            "task": task.name,
            "seed": seed,
            "model": self.model,
            "checkpoint": self.checkpoint,
            "model_config": asdict(task.encoder.config),
            "finetune": asdict(task.cfg),
            **task.record,
            "tokenizer": tok.source,
            "tokenizer_fingerprint": tok.fingerprint(),
            "device": str(task.encoder.device),
            "electra_version": __version__,
            "seconds": round(time.time() - started, 1),
            "train_loss_per_epoch": [round(x, 6) for x in run.losses],
        }
        d = run_dir(self.out, task.name, seed)
        d.mkdir(parents=True, exist_ok=True)
        io.write_json(d / "config.json", config)
        record = task.write(d, seed, run, config)
        if self.save_model:
            io.write_safetensors(d / "model.safetensors", run.model.state_dict())
            if task.saves_tokenizer:
                tok.save(d / "tokenizer")
        io.write_json(d / "metrics.json", record)  # last: the run is complete
        return run.metrics
