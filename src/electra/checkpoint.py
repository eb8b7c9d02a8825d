"""Pretraining run directories and their checkpoints (the layout: docs/pretraining.md), each written into a
temporary directory renamed into place."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from electra import io
from electra.config import PretrainConfig, from_dict
from electra.errors import ConfigError, ElectraError
from electra.tokenizer import WordPiece, load_tokenizer

RUN_FORMAT = "electra-pretraining-run"
CHECKPOINT_FORMAT = "electra-pretraining-checkpoint"
CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
INDEX = "index.json"
LATEST = "latest"
MODEL = "model.safetensors"
OPTIMIZER = "optimizer.pt"
TRAINER_STATE = "trainer_state.json"
RNG_STATE = "rng_state.pt"
TOKENIZER = "tokenizer"
FRACTIONS = (0.0625, 0.125, 0.25, 0.5, 1.0)  # kept checkpoints, as richarddwang/electra_pytorch


def fraction_label(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def fraction_steps(max_steps: int) -> dict[int, str]:
    """Completed-step count -> label ("6.25%", ...) of the kept checkpoints of a `max_steps` run."""
    out: dict[int, str] = {}
    for f in FRACTIONS:
        out.setdefault(max(1, round(f * max_steps)), fraction_label(f))
    return out


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ElectraError(f"{what} {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ElectraError(f"{what} {path} is not valid JSON ({err})") from None


def run_config(cfg: PretrainConfig, options: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    from electra import __version__

    return {"format": RUN_FORMAT, "electra_version": __version__, "config": cfg.to_dict(), "run": options, "data": data}


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG
    meta = read_json(path, "run config")
    if meta.get("format") not in (RUN_FORMAT, CHECKPOINT_FORMAT):
        raise ElectraError(f"{path} is not an electra pretraining run config (format {meta.get('format')!r})")
    return meta


def pretrain_config(meta: dict[str, Any], where: str) -> PretrainConfig:
    if "config" not in meta:
        raise ElectraError(f"{where} has no 'config' entry")
    try:
        if not isinstance(meta["config"], dict):
            raise ConfigError(f"{where}: 'config' must be an object of config fields")
        return from_dict(PretrainConfig, dict(meta["config"]), where)
    except (ConfigError, TypeError, ValueError, AttributeError) as err:  # a wrong kind or range (an edited file)
        text = str(err)
        raise ConfigError(text if where in text else f"{where}: {text}") from None


def is_run_dir(path: str | os.PathLike) -> bool:
    """True for a pretraining run directory (or one of its checkpoint directories) that `load_run` can read."""
    path = Path(path)
    try:
        fmt = json.loads((path / CONFIG).read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return False
    if fmt == RUN_FORMAT:
        return (path / CHECKPOINTS).is_dir()
    return fmt == CHECKPOINT_FORMAT and (path / MODEL).is_file()


def _checkpoint_names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def resolve_checkpoint(run_dir: str | os.PathLike, which: str | int = LATEST) -> Path:
    """The checkpoint directory `which` of a run: "latest", a kept fraction ("25%"), "step_N", or N."""
    run_dir = Path(run_dir)
    if (run_dir / MODEL).is_file():  # already a checkpoint directory
        return run_dir
    root = run_dir / CHECKPOINTS
    recover(root)
    name = f"step_{which}" if isinstance(which, int) else str(which)
    if name.endswith("%"):
        index = read_json(root / INDEX, "checkpoint index") if (root / INDEX).is_file() else {}
        if name not in index:
            raise ElectraError(f"run {run_dir} has no {name} checkpoint (kept: {', '.join(index) or 'none'})")
        name = index[name]
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ElectraError(
            f"checkpoint name {name!r} of run {run_dir} is not a checkpoint directory of the run "
            "(expected latest, step_N or a kept fraction such as 25%)"
        )
    if name == LATEST and not (root / LATEST).is_dir():
        steps = [n for n in _checkpoint_names(root) if n.startswith("step_")]
        if steps:  # e.g. a directory copied without its rolling checkpoint
            name = max(steps, key=lambda n: int(n.split("_")[1]))
    path = root / name
    if not (path / MODEL).is_file():
        available = ", ".join(_checkpoint_names(root)) or "none"
        raise ElectraError(f"run {run_dir} has no checkpoint {which!r} (available: {available})")
    return path


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state["numpy"] = {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos)}
    state["numpy"] |= {"has_gauss": int(has_gauss), "gauss": float(gauss)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def recover(root: Path) -> None:
    """Undo an interrupted `_install` and drop unfinished temporary checkpoints."""
    if not root.is_dir():
        return
    for p in sorted(root.iterdir()):
        if p.name.startswith(".old-"):
            name = p.name[len(".old-") :].rsplit("-", 2)[0]
            if not (root / name).exists():
                os.rename(p, root / name)
            else:
                shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(".tmp-") and p.is_dir():
            try:
                pid = int(p.name.split("-")[-2])
            except (IndexError, ValueError):
                pid = -1
            if pid != os.getpid() and not io.pid_alive(pid):
                shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(
    root: Path,
    name: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    trainer_state: dict[str, Any],
    config: dict[str, Any],
    tokenizer: WordPiece,
) -> Path:
    """Write checkpoint `root/name` atomically (model, optimizer, scaler, trainer and RNG state, config)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{name}-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        with io.library_writes(root / name):
            save_model(model, str(tmp / MODEL))
            io.fault_point("checkpoint.model_written")
            optimizer_state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else None}
            torch.save(optimizer_state, tmp / OPTIMIZER)
            torch.save(_rng_state(), tmp / RNG_STATE)
            loader_state = trainer_state.get("loader")
            try:
                json.dumps(loader_state)
            except TypeError:  # not JSON-able: keep it in a tensor file beside the JSON
                torch.save(loader_state, tmp / "loader_state.pt")
                trainer_state = {**trainer_state, "loader": "loader_state.pt"}
        io.write_json(tmp / TRAINER_STATE, trainer_state)
        io.write_json(tmp / CONFIG, {**config, "format": CHECKPOINT_FORMAT})
        tokenizer.save(tmp / TOKENIZER)
        io.fault_point("checkpoint.complete")
        io.install_dir(tmp, root / name)
    except BaseException as err:
        io.user_path(err, tmp, root / name)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root / name


def size_estimate(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of a checkpoint of `model` and `optimizer` (shared tensors once; the rest of a checkpoint is small)."""
    seen, total = set(), 0
    tensors = [*model.state_dict().values()]
    tensors += [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    for t in tensors:
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel())
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def copy_checkpoint(root: Path, src: str, dst: str) -> Path:
    """`root/dst` as a copy of `root/src` (hard links: files are never modified in place), installed atomically."""
    tmp = root / f".tmp-{dst}-{os.getpid()}-{time.time_ns()}"
    try:
        shutil.copytree(root / src, tmp, copy_function=_link_or_copy)
        io.fault_point("checkpoint.copied")
        io.install_dir(tmp, root / dst)
    except BaseException as err:
        io.user_path(err, tmp, root / dst)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root / dst


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def update_index(root: Path, label: str, name: str) -> None:
    index = read_json(root / INDEX, "checkpoint index") if (root / INDEX).is_file() else {}
    index[label] = name
    io.write_json(root / INDEX, index)


def problem(path: Path) -> str | None:
    """Why checkpoint directory `path` cannot be resumed from (reading headers, not tensors), or None."""
    import zipfile

    from safetensors import safe_open

    for name in (MODEL, OPTIMIZER, TRAINER_STATE):
        if not (path / name).is_file():
            return f"{path / name} is missing"
    try:
        with safe_open(str(path / MODEL), "pt") as f:
            f.keys()
    except Exception as err:  # noqa: BLE001  (safetensors raises its own error types)
        return f"{path / MODEL} is unreadable ({err})"
    for name in (OPTIMIZER, RNG_STATE):
        if (path / name).is_file():
            try:
                zipfile.ZipFile(path / name).close()  # torch.save's format; a cut file has no central directory
            except (OSError, zipfile.BadZipFile) as err:
                return f"{path / name} is truncated or unreadable ({err})"
    try:
        json.loads((path / TRAINER_STATE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"{path / TRAINER_STATE} is unreadable ({err})"
    return None


def _torch_load(path: Path, **kwargs) -> Any:
    try:
        return torch.load(path, weights_only=True, **kwargs)
    except Exception as err:  # noqa: BLE001  (a truncated or foreign file)
        raise ElectraError(f"could not read {path}: {err}") from None


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    restore_rng: bool = False,
) -> dict[str, Any]:
    """Load weights (and optimizer, scaler, RNG) from a checkpoint directory; returns its trainer state."""
    try:
        missing, unexpected = load_model(model, str(path / MODEL), strict=False, device=_device_of(model))
    except Exception as err:  # a truncated or foreign file
        raise ElectraError(f"could not read {path / MODEL}: {err}") from None
    # a --word-init ppmi run saved before the start table was kept: zero, i.e. the table's own top direction
    missing = [k for k in missing if k != "word_start"]
    if missing or unexpected:
        raise ElectraError(
            f"checkpoint {path} does not match the model (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})"
        )
    state = read_json(path / TRAINER_STATE, "trainer state")
    if state.get("loader") == "loader_state.pt":
        state["loader"] = _torch_load(path / "loader_state.pt")
    if optimizer is not None:
        saved = _torch_load(path / OPTIMIZER, map_location=_device_of(model))
        optimizer.load_state_dict(saved["optimizer"])
        if scaler is not None and saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
    if restore_rng and (path / RNG_STATE).is_file():
        _set_rng_state(_torch_load(path / RNG_STATE))
    return state


def _device_of(model: torch.nn.Module) -> str:
    p = next(model.parameters(), None)
    return str(p.device) if p is not None else "cpu"


def load_run(
    path: str | os.PathLike, checkpoint: str | int = LATEST, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, PretrainConfig, WordPiece]:
    """(ELECTRA model in eval mode, its PretrainConfig, its tokenizer) from a run directory (or a checkpoint
    directory of one). `checkpoint`: "latest", "6.25%" ... "100%", "step_N" or N."""
    from electra import init
    from electra.objective import SpecialIds

    path = Path(path)
    if not is_run_dir(path):
        raise ElectraError(f"{path} is not an electra pretraining run directory (no {CONFIG} with a checkpoint)")
    ckpt = resolve_checkpoint(path, checkpoint)
    meta = read_run_config(ckpt)
    cfg = pretrain_config(meta, str(ckpt / CONFIG))
    tok_dir = ckpt / TOKENIZER if (ckpt / TOKENIZER).is_dir() else path / TOKENIZER
    tokenizer = load_tokenizer(tok_dir)
    model = init.build(cfg, SpecialIds.from_tokenizer(tokenizer)).to(device)
    load_checkpoint(ckpt, model)
    # gdes: a plain discriminator (or masked LM; tables = generator's + deltas) from here on
    model.delivered().embeddings.merge_base()
    return model.eval(), cfg, tokenizer
