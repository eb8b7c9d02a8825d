"""A pretraining run directory (docs/pretraining.md): what it may hold, who writes it, and the run to do
(`resolve_setup`)."""

from __future__ import annotations

import json
import sys
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
from electra.fused import check_speed_variants
from electra.loading import init_from_hf
from electra.model import ELECTRA
from electra.tokenizer import WordPiece, load_tokenizer

if TYPE_CHECKING:
    from electra.data.loader import PretrainLoader

OUTPUTS = (ckpt.CHECKPOINTS, "tb", "metrics.jsonl")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json")  # what `WordPiece.save` writes


def inspect(run_dir: Path, resume: bool, force: bool) -> tuple[dict[str, Any] | None, Path | None]:
    """The run's saved config (None for a new directory) and the checkpoint to resume from (None: start anew);
    refuses a directory with a run's outputs but no config.json, and an existing run unless resumed or forced."""
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
    """Say which kept checkpoints (`step_N`) are damaged (the resumed run writes those past its start again)."""
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


def config_differences(
    a: dict[str, Any], b: dict[str, Any], prefix: str = "", names: tuple[str, str] = ("now", "in the run")
) -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, f"{prefix}{key}.", names)
        elif va != vb:
            out.append(f"{prefix}{key} ({vb!r} {names[1]}, {va!r} {names[0]})")
    return out


def check_unchanged(run_dir: Path, resume_from: Path, cfg: PretrainConfig) -> None:
    """Refuse to resume when the run's config.json no longer says what its checkpoint was trained with (an edited
    learning_rate or max_steps would otherwise apply silently from the middle of the run on)."""
    path = resume_from / ckpt.CONFIG
    if not path.is_file():  # (every checkpoint holds its copy; a damaged one is not resumed from)
        return
    trained = ckpt.pretrain_config(ckpt.read_json(path, "checkpoint config"), str(path))
    diffs = config_differences(cfg.to_dict(), trained.to_dict(), names=("in config.json", "in the checkpoint"))
    if diffs:
        raise ElectraError(
            f"cannot resume {run_dir}: its {ckpt.CONFIG} differs from the config its checkpoint {resume_from.name} "
            f"was trained with: {'; '.join(diffs)}; put the checkpoint's values back (they are in {path}), "
            "or start a new run (another --out, or --force)"
        )


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
    fused_generator_head: bool = False  # electra.fused: the generator's head, loss and sampling chunk by chunk
    graph_optimizer: bool = False  # electra.fused.GraphUpdate: clipping and AdamW as one compiled function
    gemm_epilogues: bool = False  # with compile: inductor's GEMMs with the pointwise work fused in (electra.fused)
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
RESUMED_OPTIONS = tuple(
    "log_every save_every eval_every eval_examples micro_batch_size precision prepare_workers vocab data_cache "
    "probe glue_dir".split()
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
    except ConfigError as err:  # a value of the run's own options: named as its place in that file
        raise ConfigError(f"{where}: run.{err}") from None
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
    if saved is not None and not opts.resume:  # --force clears the old run's outputs: none of the inputs may be there
        inputs = {"--data": opts.data, "--corpus": opts.corpus, "--vocab": opts.vocab, "--init-from": opts.init_from}
        for name in OUTPUTS:
            io.refuse_inputs_inside(run_dir / name, inputs)
    init_model, tokenizer = None, None
    if opts.resume and saved is not None:
        saved_cfg = ckpt.pretrain_config(saved, str(run_dir / ckpt.CONFIG))
        if resume_from is not None:
            check_unchanged(run_dir, resume_from, saved_cfg)
        if (run_dir / ckpt.TOKENIZER).is_dir():
            tokenizer = load_tokenizer(run_dir / ckpt.TOKENIZER)
        if preset_name is not None or overrides:  # what the command line asks for must be what the run is
            wanted = preset(preset_name, **overrides) if preset_name else apply_overrides(saved_cfg, overrides)
            if preset_name and "vocab_size" not in overrides:  # as the command took it when it started the run
                vocab = tokenizer.vocab_size if tokenizer is not None else saved_cfg.model.vocab_size
                wanted = replace(wanted, model=replace(wanted.model, vocab_size=vocab))
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
        if resume_from is not None:
            opts.init_from = None  # the checkpoint has the weights
    else:
        cfg = config_from(preset_name, overrides)
    variants = dict(fused_generator_head=opts.fused_generator_head, gemm_epilogues=opts.gemm_epilogues)
    check_speed_variants(cfg, opts.compile, **variants)  # (before the data is prepared or anything written)
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
