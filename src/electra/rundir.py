"""A pretraining run directory: what it may hold, who writes it, and how it is started, saved and logged.

    RUN_DIR/
      .lock            one writer at a time (`electra.io.DirLock`)
      config.json      the run's config and options; a finished run says so
      tokenizer/       the run's tokenizer (written once, never rewritten in place)
      checkpoints/     latest (rolling), step_N at the kept fractions, index.json  (`electra.checkpoint`)
      metrics.jsonl    one record per logged step and per evaluation; tb/: the same for TensorBoard

Policy: a directory that holds a run is only continued (`--resume`) or replaced (`--force`); one that holds other
files of these names is refused; a resumed run's metrics are cut back to its checkpoint's step; a damaged `latest`
falls back to the newest intact kept checkpoint. `resolve_setup` turns the options into the run to do (config,
data, tokenizer, checkpoint to resume from).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from electra import checkpoint as ckpt
from electra import dist, io
from electra.config import (
    PRESETS,
    ModelConfig,
    PretrainConfig,
    check_fields,
    check_range,
    flat_fields,
    from_dict,
    preset,
)
from electra.errors import ConfigError, ElectraError
from electra.loading import init_from_hf
from electra.model import ELECTRA
from electra.tokenizer import WordPiece, load_tokenizer

if TYPE_CHECKING:
    import torch

    from electra.data.loader import PretrainLoader

OUTPUTS = (ckpt.CHECKPOINTS, "tb", "metrics.jsonl")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json")  # what `WordPiece.save` writes


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
    if resume and (root / ckpt.INDEX).is_file():  # read now, not first at the next kept checkpoint
        ckpt.read_json(root / ckpt.INDEX, "checkpoint index")
    has_checkpoint = root.is_dir() and any((p / ckpt.MODEL).is_file() for p in root.iterdir() if p.name[0] != ".")
    resume_from = ckpt.resolve_checkpoint(run_dir, ckpt.LATEST) if resume and has_checkpoint else None
    if resume_from is not None and (bad := ckpt.problem(resume_from)):
        resume_from = _fall_back(run_dir, bad)
    if resume_from is not None:
        _say_damaged_kept(run_dir, resume_from)
    return saved, resume_from


def _say_damaged_kept(run_dir: Path, resume_from: Path) -> None:
    """Say which kept checkpoints (`step_N`) are damaged: the resumed run writes those past its start again, the
    others stay as they are."""
    start = json.loads((resume_from / ckpt.TRAINER_STATE).read_text()).get("step", 0)
    root = run_dir / ckpt.CHECKPOINTS
    for path in sorted((p for p in root.glob("step_*") if p.name[5:].isdigit()), key=lambda p: int(p.name[5:])):
        if path == resume_from or (bad := ckpt.problem(path)) is None:
            continue
        step = int(path.name[5:])
        if step > start:
            print(f"  {bad}: the resumed run writes {path.name} again", file=sys.stderr, flush=True)
        else:
            print(
                f"  {bad}: the kept checkpoint {path.name} stays damaged (the run resumes at step {start}, after it); "
                "start over with --force to have it again",
                file=sys.stderr,
                flush=True,
            )


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


# ---------------------------------------------------------------------------------------------- setup


@dataclass
class RunOptions:
    """Where and how a run happens; unlike `PretrainConfig`, none of this changes the trained weights."""

    out: str
    data: str | None = None
    corpus: list[str] | None = None
    vocab: str | None = None
    data_cache: str | None = None
    prepare_workers: int = 1
    init_from: list[str] | None = None
    resume: bool = False
    force: bool = False
    log_every: int = 10
    save_every: int = 1000
    eval_every: int = 1000
    eval_examples: int = 1000
    micro_batch_size: int | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: str | None = None  # a torch.compile mode; None: eager
    device: str = "auto"
    progress: bool = True
    probe: str = "builtin"  # the linear-probe set logged at every evaluation ("none": no probe)
    glue_dir: str | None = None  # for a `glue:<task>` probe
    wandb: str | None = None

    def __post_init__(self):
        check_fields(self)
        for name in ("prepare_workers", "log_every", "save_every", "eval_examples"):
            check_range(self, name, 1, None)
        check_range(self, "eval_every", 0, None)  # 0: never
        if self.micro_batch_size is not None:
            check_range(self, "micro_batch_size", 1, None)


@dataclass
class Setup:
    cfg: PretrainConfig
    opts: RunOptions
    run_dir: Path
    data_dir: Path
    tokenizer: WordPiece
    init_model: ELECTRA | None = None  # weights from --init-from
    resume_from: Path | None = None
    run_meta: dict[str, Any] = field(default_factory=dict)


# run options that `--resume` takes from the run when they are not given again
RESUMED_OPTIONS = (
    "log_every",
    "save_every",
    "eval_every",
    "eval_examples",
    "micro_batch_size",
    "precision",
    "prepare_workers",
    "vocab",
    "data_cache",
    "probe",
    "glue_dir",
)


def run_options(
    given: dict[str, Any], saved: dict[str, Any] | None, where: str = "the run's config.json"
) -> RunOptions:
    """The options given (None: not given); on --resume, the run's own for those not given (a bad one named as a
    value of `where`, the run's config.json); else the defaults."""
    values = {k: v for k, v in given.items() if k in RunOptions.__dataclass_fields__}
    defaults = RunOptions(out="")
    own = (saved or {}).get("run", {}) if given.get("resume") else {}
    if not isinstance(own, dict):
        raise ConfigError(f"{where}: 'run' is not an object of options")
    own = {k: v for k, v in own.items() if k in RESUMED_OPTIONS and values.get(k) is None}
    try:
        RunOptions(out="", **own)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    for key in RESUMED_OPTIONS:
        if values.get(key) is None:
            values[key] = own.get(key, getattr(defaults, key))
    values = {k: v for k, v in values.items() if v is not None or k in RESUMED_OPTIONS}
    return RunOptions(**values)


def resolve_setup(
    given: dict[str, Any], preset_name: str | None, overrides: dict[str, Any], info: dist.DistInfo
) -> Setup:
    """The run to do: its config (the preset with `overrides`, or on --resume the run's own, which `overrides` may
    not contradict), options, data and tokenizer, and the checkpoint to resume from."""
    run_dir = Path(given["out"])
    run_options(given, None)  # the options' types and ranges, before the directory is read
    saved, resume_from = inspect(run_dir, bool(given.get("resume")), bool(given.get("force")))
    opts = run_options(given, saved, str(run_dir / ckpt.CONFIG))
    init_model, tokenizer = None, None
    if opts.resume and saved is not None:
        saved_cfg = ckpt.pretrain_config(saved, str(run_dir / ckpt.CONFIG))
        if preset_name is not None or overrides:  # what the command line asks for must be what the run is
            wanted = preset(preset_name, **overrides) if preset_name else apply_overrides(saved_cfg, overrides)
            if opts.init_from:  # the shapes came from the --init-from models
                wanted = replace(
                    wanted,
                    model=saved_cfg.model,
                    generator_size=saved_cfg.generator_size,
                    generator_layers=saved_cfg.generator_layers,
                )
            diffs = config_differences(wanted.to_dict(), saved_cfg.to_dict())
            if diffs:
                raise ElectraError(f"cannot resume {run_dir}: the config differs from the run's: {'; '.join(diffs)}")
        cfg = saved_cfg
        if not opts.data and not opts.corpus:
            opts.data = saved.get("data", {}).get("path")
        if (run_dir / ckpt.TOKENIZER).is_dir():
            tokenizer = load_tokenizer(run_dir / ckpt.TOKENIZER)
        if resume_from is not None:
            opts.init_from = None  # the checkpoint has the weights
    else:
        cfg = config_from(preset_name, overrides)
    if opts.init_from:
        cfg, init_model, tokenizer = init_from_hf(cfg, opts.init_from)
    data_dir = _prepare_data(opts, cfg, run_dir, tokenizer, info)
    if tokenizer is None:
        tokenizer = load_tokenizer(data_dir / "tokenizer")
    if saved is None or not opts.resume:
        cfg = _vocab_from_data(cfg, overrides, tokenizer, opts)
    return Setup(cfg, opts, run_dir, data_dir, tokenizer, init_model, resume_from, saved or {})


def _vocab_from_data(
    cfg: PretrainConfig, overrides: dict[str, Any], tokenizer: WordPiece, opts: RunOptions
) -> PretrainConfig:
    """A new run's vocabulary size is its tokenizer's, unless --vocab-size says otherwise (a conflict is then
    reported by the data check) or the weights come from --init-from."""
    if "vocab_size" in overrides or opts.init_from or tokenizer.vocab_size == cfg.model.vocab_size:
        return cfg
    return replace(cfg, model=replace(cfg.model, vocab_size=tokenizer.vocab_size))


def config_from(preset_name: str | None, overrides: dict[str, Any]) -> PretrainConfig:
    """The preset with `overrides`; without a preset, `overrides` must give every field (a run's config.json
    read with --config)."""
    if preset_name is not None:
        return preset(preset_name, **overrides)
    if {name for name, _ in flat_fields(PretrainConfig, ModelConfig)} <= set(overrides):
        return apply_overrides(PretrainConfig(), overrides)
    raise ElectraError("--preset is required (choose one of " + ", ".join(PRESETS) + ")")


def apply_overrides(cfg: PretrainConfig, overrides: dict[str, Any]) -> PretrainConfig:
    values = cfg.to_dict()
    for key, value in overrides.items():
        (values["model"] if key in values["model"] else values)[key] = value
    return from_dict(PretrainConfig, values)


def _prepare_data(
    opts: RunOptions, cfg: PretrainConfig, run_dir: Path, tokenizer: WordPiece | None, info: dist.DistInfo
) -> Path:
    """--data DIR as given, or --corpus SRC... prepared (once, by the main process; reused when cached)."""
    if bool(opts.data) == bool(opts.corpus):
        raise ElectraError("give exactly one of --data DIR (from `electra prepare`) or --corpus SRC ...")
    if opts.data:
        from electra.data import load_dataset_meta

        load_dataset_meta(opts.data)  # one clear line for a path that is not a complete prepared dataset
        return Path(opts.data)
    from electra.data import prepare_corpus

    if tokenizer is None:
        if not opts.vocab:
            raise ElectraError("--corpus needs --vocab FILE|DIR|HUB_ID (the tokenizer) unless --init-from gives one")
        tokenizer = load_tokenizer(opts.vocab)
    out = Path(opts.data_cache) if opts.data_cache else run_dir / "data"
    if info.is_main:
        prepare_corpus(list(opts.corpus), tokenizer, cfg.max_length, out, workers=opts.prepare_workers, seed=cfg.seed)
    dist.barrier(info)
    return out


def check_data(loader: PretrainLoader, setup: Setup) -> None:
    cfg, tok = setup.cfg, loader.tokenizer
    if loader.max_length != cfg.max_length:
        raise ElectraError(
            f"{setup.data_dir} was prepared with max length {loader.max_length}, but the config has "
            f"max_length {cfg.max_length}; prepare it again or pass --max-length {loader.max_length}"
        )
    if tok.vocab_size != cfg.model.vocab_size:
        raise ElectraError(
            f"{setup.data_dir} uses a vocabulary of {tok.vocab_size} tokens, but --vocab-size is "
            f"{cfg.model.vocab_size}; leave --vocab-size out to use the data's"
        )
    if tok.fingerprint() != setup.tokenizer.fingerprint():
        raise ElectraError(
            f"{setup.data_dir} was prepared with another tokenizer than the model's "
            f"({setup.tokenizer.source}); prepare the corpus with that tokenizer"
        )
    saved = setup.run_meta.get("data")
    if setup.resume_from is not None and saved and saved.get("key") != loader.meta.get("key"):
        raise ElectraError(
            f"cannot resume {setup.run_dir}: it was trained on other data ({saved.get('path')}, "
            f"key {saved.get('key')}) than {setup.data_dir} (key {loader.meta.get('key')})"
        )


def data_info(loader: PretrainLoader, setup: Setup) -> dict[str, Any]:
    return {
        "path": str(Path(setup.data_dir).resolve()),
        "key": loader.meta.get("key"),
        "num_examples": loader.num_examples,
        "tokenizer_fingerprint": loader.tokenizer.fingerprint(),
    }
