"""A pretraining run directory: what it may hold, who writes it, and how it is started, saved and logged.

    RUN_DIR/
      .lock            one writer at a time (`electra.io.DirLock`)
      config.json      the run's config and options; a finished run says so
      tokenizer/       the run's tokenizer (written once, never rewritten in place)
      checkpoints/     latest (rolling), step_N at the kept fractions, index.json  (`electra.checkpoint`)
      metrics.jsonl    one record per logged step and per evaluation; tb/: the same for TensorBoard

Policy: a directory that holds a run is only continued (`--resume`) or replaced (`--force`); one that holds other
files of these names is refused; a resumed run's metrics are cut back to its checkpoint's step.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from electra import checkpoint as ckpt
from electra import io
from electra.errors import ElectraError
from electra.tokenizer import WordPiece, load_tokenizer

OUTPUTS = (ckpt.CHECKPOINTS, "tb", "metrics.jsonl")


def lock(run_dir: Path) -> io.DirLock:
    """Take `run_dir`'s lock (refused, with the holder's pid and host, while another process writes it)."""
    return io.DirLock(run_dir, "run directory").acquire()


def inspect(run_dir: Path, resume: bool, force: bool) -> tuple[dict[str, Any] | None, Path | None]:
    """The run's saved config (None for a new directory) and the checkpoint to resume from (None: start anew).

    Refuses a directory with a run's outputs but no config.json (not ours), and an existing run unless it is
    resumed or `force` replaces it."""
    saved = ckpt.read_run_config(run_dir) if (run_dir / ckpt.CONFIG).is_file() else None
    foreign = [n for n in OUTPUTS if (run_dir / n).exists()]
    if saved is None and foreign:  # our runs write config.json before any of these
        raise ElectraError(
            f"{run_dir} holds {', '.join(foreign)} but is not an electra pretraining run (no config.json); "
            "choose another --out"
        )
    if saved is not None and not resume and not force:
        what = "a finished run" if saved.get("finished", False) else "a run"
        raise ElectraError(
            f"{run_dir} already holds {what}; pass --resume to continue it or --force to start over "
            "(its checkpoints and metrics are deleted)"
        )
    root = run_dir / ckpt.CHECKPOINTS
    has_checkpoint = root.is_dir() and any((p / ckpt.MODEL).is_file() for p in root.iterdir() if p.name[0] != ".")
    resume_from = ckpt.resolve_checkpoint(run_dir, ckpt.LATEST) if resume and has_checkpoint else None
    if resume_from is not None and (bad := ckpt.problem(resume_from)):
        resume_from = _fall_back(run_dir, bad)
    return saved, resume_from


def _fall_back(run_dir: Path, bad: str) -> Path:
    """The newest intact kept checkpoint, when `latest` is damaged (said on stderr); else one clear error."""
    root = run_dir / ckpt.CHECKPOINTS
    kept = sorted((p for p in root.glob("step_*") if p.name[5:].isdigit()), key=lambda p: -int(p.name[5:]))
    for path in kept:
        if ckpt.problem(path) is None:
            print(f"  {bad}: resuming from {path.name}, the newest intact checkpoint", file=sys.stderr, flush=True)
            return path
    raise ElectraError(f"cannot resume {run_dir}: {bad}, and no kept checkpoint is intact; start over with --force")


def config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key} ({vb!r} in the run, {va!r} now)")
    return out


def start(run_dir: Path, run_config: dict[str, Any], tokenizer: WordPiece, fresh: bool) -> None:
    """Write the run's config.json and tokenizer; `fresh` (a new run, or --force over an old one) first deletes
    the old run's outputs."""
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

    if path.is_dir():
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
    model,
    optimizer,
    scaler,
    loader_state: dict[str, Any],
    world_size: int,
    run_config: dict[str, Any],
    tokenizer: WordPiece,
    keep: dict[int, str],
) -> Path:
    """The rolling `latest` checkpoint; when `step` is a kept fraction, `step_N` and its index entry first and
    `latest` as a copy of it, so that a kill at any point either leaves `latest` at an earlier step (the resumed
    run writes `step_N` again, identically) or finds both complete. A finished run's config.json says so."""
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
    path = ckpt.save_checkpoint(root, name, model, optimizer, scaler, state, run_config, tokenizer)
    if step in keep:
        io.fault_point("save.kept_written")
        ckpt.update_index(root, keep[step], name)
        io.fault_point("save.indexed")
        path = ckpt.copy_checkpoint(root, name, ckpt.LATEST)
    if finished:
        io.fault_point("save.finishing")
        io.write_json(run_dir / ckpt.CONFIG, {**run_config, "finished": True})
    return path


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
            self.wandb.log({f"{split}/{k}": v for k, v in record.items() if k not in ("step", "split")},
                           step=record["step"])  # fmt: skip

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
