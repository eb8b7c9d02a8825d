"""What a pretraining run writes while it trains: config.json and tokenizer, checkpoints, and the metrics log
(metrics.jsonl, TensorBoard, optionally Weights & Biases), cut back to the checkpoint's step on resume."""

from __future__ import annotations

import errno
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from electra import checkpoint as ckpt
from electra import io
from electra.errors import ElectraError
from electra.tokenizer import WordPiece, load_tokenizer
from electra.train.rundir import OUTPUTS, TOKENIZER_FILES

if TYPE_CHECKING:
    import torch


def start(run_dir: Path, run_config: dict[str, Any], tokenizer: WordPiece, fresh: bool) -> None:
    """Write the run's config.json and tokenizer; `fresh` first deletes an old run's outputs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if fresh:  # --force over an old run, or a new directory: start from a clean slate
        for name in OUTPUTS:
            p = run_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    io.write_json(run_dir / ckpt.CONFIG, run_config)
    install_tokenizer(tokenizer, run_dir / ckpt.TOKENIZER)


def install_tokenizer(tokenizer: WordPiece, path: Path) -> None:
    """The run's copy of its tokenizer: left alone when it is already this one (a resume never rewrites it),
    else written next to it and renamed into place, so that a kill never leaves a truncated tokenizer.json."""

    if path.is_dir() and all((path / name).is_file() for name in TOKENIZER_FILES):  # (none deleted since)
        try:
            if load_tokenizer(path).fingerprint() == tokenizer.fingerprint():
                return
        except ElectraError:
            pass  # unreadable: replaced below
    io.write_dir(path, tokenizer.save, force=True)


def save(
    run_dir: Path,
    *,
    step: int,
    max_steps: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    loader_state: dict[str, Any],
    world_size: int,
    run_config: dict[str, Any],
    tokenizer: WordPiece,
    keep: dict[int, str],
) -> Path:
    """The rolling `latest` checkpoint; at a kept fraction `step_N` and its index entry first, then `latest` as its
    copy, so a kill at any point leaves a state the resumed run completes identically."""
    root = run_dir / ckpt.CHECKPOINTS
    finished = step == max_steps
    state = {
        "step": step,
        "max_steps": max_steps,
        "finished": finished,
        "loader": loader_state,
        "world_size": world_size,
        "time": time.time(),
    }
    name = f"step_{step}" if step in keep else ckpt.LATEST
    try:
        path = ckpt.save_checkpoint(root, name, model, optimizer, scaler, state, run_config, tokenizer)
        if step in keep:
            io.fault_point("save.kept_written")
            ckpt.update_index(root, keep[step], name)
            io.fault_point("save.indexed")
            path = ckpt.copy_checkpoint(root, name, ckpt.LATEST)
        if finished:
            io.fault_point("save.finishing")
            io.write_json(run_dir / ckpt.CONFIG, {**run_config, "finished": True})
    except OSError as err:
        if err.errno not in FULL_DISK:
            raise
        raise ElectraError(
            f"{run_dir}: no room for the checkpoint of step {step} ({err.strerror}): a checkpoint needs about "
            f"{_size(ckpt.size_estimate(model, optimizer))} and {_size(shutil.disk_usage(run_dir).free)} is free "
            "there; the checkpoints written so far are intact; make room, then continue it with --resume"
        ) from None
    return path


# a full disk or quota, a file size limit, or a write a library reported as failed (`electra.io.library_writes`)
FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class MetricsLog:
    """metrics.jsonl (+ TensorBoard, + optionally Weights & Biases), written by the main process only."""

    def __init__(self, run_dir: Path, start_step: int, wandb_project: str | None, config: dict[str, Any]):
        self.path = run_dir / "metrics.jsonl"
        _truncate_metrics(self.path, start_step)
        self.file = self.path.open("a")
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        self.wandb = None
        if wandb_project:
            try:
                import wandb
            except ImportError:
                raise ElectraError("--wandb needs the wandb package (pip install 'electra[wandb]')") from None
            self.wandb = wandb.init(project=wandb_project, name=run_dir.name, config=config, resume="allow")

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        io.fault_point("metrics.written")
        split = record.get("split", "train")
        for key, value in record.items():
            if key not in ("step", "split") and isinstance(value, (int, float)):
                self.tb.add_scalar(f"{split}/{key}", value, record["step"])
        if self.wandb is not None:
            self.wandb.log(
                {f"{split}/{k}": v for k, v in record.items() if k not in ("step", "split")}, step=record["step"]
            )

    def close(self) -> None:
        self.file.close()
        self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _truncate_metrics(path: Path, start_step: int) -> None:
    """Keep only records of steps <= start_step (a killed run may have logged past its last checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if record.get("step", 0) <= start_step:
            kept.append(line)
    io.write_text(path, "".join(line + "\n" for line in kept))
