"""`electra pretrain`: train generator and discriminator jointly, as the paper did, on 1 CPU to many GPUs.

    electra pretrain --preset small --data DATA_DIR --out RUN_DIR
    torchrun --nproc-per-node 8 -m electra pretrain --preset base --data DATA_DIR --out RUN_DIR

Read `train` for the loop. One optimizer step ("step N" = N-th update) processes the preset's global batch,
whatever the number of processes: each process takes its contiguous slice of the batch and splits it into
micro-batches (gradient accumulation). The loss of every micro-batch is normalised by the *global* batch's
denominators (masked slots, real tokens), so the accumulated gradient is exactly the gradient of the official
full-batch loss (docs/faithfulness.md §3.2, §3.4). All randomness of a micro-batch (masking, sampling, dropout) is
seeded from (seed, step, global micro-batch index): 2 processes × k micro-batches compute what 1 process × 2k does,
and a resumed run repeats an uninterrupted one exactly. Optimizer and schedule: docs/faithfulness.md §5 (see
`electra.optim`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from electra import checkpoint as ckpt
from electra import dist, io, rundir
from electra.config import (
    PRESETS,
    ModelConfig,
    PretrainConfig,
    add_config_arguments,
    flat_fields,
    from_dict,
    overrides_from_args,
    preset,
    unknown_key_message,
)
from electra.errors import ElectraError
from electra.flops import format_flops, train_flops_per_sequence
from electra.model import ELECTRA
from electra.objective import SpecialIds
from electra.optim import peak_lr_factor
from electra.step import (
    MAX_MICRO_TOKENS,
    NonFiniteLoss,
    StepResult,
    add_compile_argument,
    build_optimizer,
    check_compile_plan,
    choose_precision,
    compile_model,
    evaluate,
    plan_batches,
    read_steps,
    set_learning_rate,
    to_device,
    train_step,
)
from electra.tokenizer import WordPiece, load_tokenizer


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
    precision: str = "auto"
    compile: str | None = None  # a torch.compile mode; None: eager
    device: str = "auto"
    progress: bool = True
    probe: str = "builtin"  # the linear-probe set logged at every evaluation ("none": no probe)
    glue_dir: str | None = None  # for a `glue:<task>` probe
    wandb: str | None = None


class LiveProbe:
    """The linear probe of `electra.probe` on the encoder being trained, with the same probe on the randomly
    initialised encoder of this shape (computed once) as the baseline it has to beat."""

    def __init__(self, probe_set, tokenizer, max_length: int, baseline: dict[str, float]):
        self.probe_set, self.tokenizer, self.max_length, self.baseline = probe_set, tokenizer, max_length, baseline

    @classmethod
    def start(cls, opts: RunOptions, cfg: PretrainConfig, tokenizer: WordPiece, device: torch.device
              ) -> LiveProbe | None:  # fmt: skip
        from electra.probe import load_probe_set, probe, random_encoder

        if opts.probe == "none":
            return None
        try:
            probe_set = load_probe_set(opts.probe, opts.glue_dir)
        except ElectraError as err:
            dist.print0(f"  (no probe: {err})", flush=True)
            return None
        encoder_cfg = cfg.model if cfg.objective == "electra" else cfg.generator_model
        rng_state = torch.get_rng_state()  # the baseline's initialisation must not move the run's random stream
        result = probe(random_encoder(encoder_cfg, cfg.seed).to(device), tokenizer, probe_set, cfg.max_length)
        torch.set_rng_state(rng_state)
        baseline = {"probe_random_cls": result["probe_cls"], "probe_random_mean": result["probe_mean"],
                    "probe_majority": probe_set.majority}  # fmt: skip
        dist.print0(f"  probe {probe_set.name} ({len(probe_set.train)} train / {len(probe_set.test)} test): random "
                    f"initialisation {result['probe_cls']:.3f} ([CLS]) {result['probe_mean']:.3f} (mean), majority "
                    f"class {probe_set.majority:.3f}", flush=True)  # fmt: skip
        return cls(probe_set, tokenizer, cfg.max_length, baseline)

    def __call__(self, model: ELECTRA) -> dict[str, float]:
        from electra.probe import probe

        encoder = model.discriminator.electra if model.cfg.objective == "electra" else model.generator.electra
        return {**probe(encoder, self.tokenizer, self.probe_set, self.max_length), **self.baseline}


# ---------------------------------------------------------------------------------------------- setup


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


def init_from_hf(cfg: PretrainConfig, sources: list[str]) -> tuple[PretrainConfig, ELECTRA, WordPiece]:
    """Continued pretraining: discriminator (and optionally generator) weights and shapes from HF-format models.

    The model shape comes from the discriminator; the generator's width and depth from the generator when one is
    given (e.g. 1.0 for the released ELECTRA-Small), else from the config. The shared embeddings are the
    discriminator's."""
    from electra.hf import copy_state, load_hf

    if not 1 <= len(sources) <= 2:
        raise ElectraError("--init-from takes a discriminator and optionally a generator")
    disc = load_hf(sources[0], "discriminator")
    gen = load_hf(sources[1], "generator") if len(sources) == 2 else None
    model_cfg = replace(disc.config, hidden_dropout_prob=cfg.model.hidden_dropout_prob,
                        attention_probs_dropout_prob=cfg.model.attention_probs_dropout_prob)  # fmt: skip
    updates: dict[str, Any] = {"model": model_cfg}
    if gen is not None:
        g = gen.config
        if g.vocab_size != model_cfg.vocab_size or g.embedding_size != model_cfg.embedding_size:
            raise ElectraError(f"generator {sources[1]} does not fit discriminator {sources[0]} "
                               "(vocabulary or embedding size differ)")  # fmt: skip
        updates["generator_size"] = g.hidden_size / model_cfg.hidden_size
        updates["generator_layers"] = g.num_hidden_layers / model_cfg.num_hidden_layers
    cfg = replace(cfg, **updates)
    if gen is not None and (cfg.generator_model.hidden_size, cfg.generator_model.num_hidden_layers) != (
        gen.config.hidden_size,
        gen.config.num_hidden_layers,
    ):
        raise ElectraError(f"generator {sources[1]} has a shape this toolkit cannot express")
    tokenizer = load_tokenizer(sources[0])
    torch.manual_seed(cfg.seed)  # for the generator, when none is given
    model = ELECTRA(cfg, SpecialIds.from_tokenizer(tokenizer))
    if gen is not None:  # first, so that the discriminator's copy of the shared embeddings wins
        copy_state(gen, model.generator, f"generator {sources[1]}")
    copy_state(disc, model.discriminator, f"discriminator {sources[0]}")
    return cfg, model, tokenizer


# run options that `--resume` takes from the run when they are not given again
RESUMED_OPTIONS = ("log_every", "save_every", "eval_every", "eval_examples", "micro_batch_size", "precision",
                   "prepare_workers", "vocab", "data_cache", "probe", "glue_dir")  # fmt: skip


def run_options(given: dict[str, Any], saved: dict[str, Any] | None) -> RunOptions:
    """The options given (None: not given); on --resume, the run's own for those not given; else the defaults."""
    values = {k: v for k, v in given.items() if k in RunOptions.__dataclass_fields__}
    defaults = RunOptions(out="")
    for key in RESUMED_OPTIONS:
        if values.get(key) is None:
            values[key] = (
                (saved or {}).get("run", {}).get(key, getattr(defaults, key))
                if given.get("resume")
                else getattr(defaults, key)
            )
    values = {k: v for k, v in values.items() if v is not None or k in RESUMED_OPTIONS}
    opts = RunOptions(**values)
    for name in ("log_every", "save_every", "eval_examples"):
        if getattr(opts, name) < 1:
            raise ElectraError(f"--{name.replace('_', '-')} must be at least 1")
    return opts


def resolve_setup(given: dict[str, Any], preset_name: str | None, overrides: dict[str, Any],
                  info: dist.DistInfo) -> Setup:  # fmt: skip
    """The run to do: its config (the preset with `overrides`, or on --resume the run's own, which `overrides` may
    not contradict), options, data and tokenizer, and the checkpoint to resume from."""
    run_dir = Path(given["out"])
    saved, resume_from = rundir.inspect(run_dir, bool(given.get("resume")), bool(given.get("force")))
    opts = run_options(given, saved)
    init_model, tokenizer = None, None
    if opts.resume and saved is not None:
        saved_cfg = ckpt.pretrain_config(saved, str(run_dir / ckpt.CONFIG))
        if preset_name is not None or overrides:  # what the command line asks for must be what the run is
            wanted = preset(preset_name, **overrides) if preset_name else _apply(saved_cfg, overrides)
            if opts.init_from:  # the shapes came from the --init-from models
                wanted = replace(wanted, model=saved_cfg.model, generator_size=saved_cfg.generator_size,
                                 generator_layers=saved_cfg.generator_layers)  # fmt: skip
            diffs = rundir.config_differences(wanted.to_dict(), saved_cfg.to_dict())
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


def _vocab_from_data(cfg: PretrainConfig, overrides: dict[str, Any], tokenizer: WordPiece,
                     opts: RunOptions) -> PretrainConfig:  # fmt: skip
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
        return _apply(PretrainConfig(), overrides)
    raise ElectraError("--preset is required (choose one of " + ", ".join(PRESETS) + ")")


def _apply(cfg: PretrainConfig, overrides: dict[str, Any]) -> PretrainConfig:
    values = cfg.to_dict()
    for key, value in overrides.items():
        (values["model"] if key in values["model"] else values)[key] = value
    return from_dict(PretrainConfig, values)


def _prepare_data(opts: RunOptions, cfg: PretrainConfig, run_dir: Path, tokenizer: WordPiece | None,
                  info: dist.DistInfo) -> Path:  # fmt: skip
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
        prepare_corpus(list(opts.corpus), tokenizer, cfg.max_length, out, workers=opts.prepare_workers,
                       seed=cfg.seed)  # fmt: skip
    dist.barrier(info)
    return out


# ---------------------------------------------------------------------------------------------- the run


def train(setup: Setup, info: dist.DistInfo) -> dict[str, Any]:
    """Set up model, optimizer, data and logs, then run the loop; returns the last logged training record."""
    from electra.data import PretrainLoader

    cfg, opts, run_dir = setup.cfg, setup.opts, setup.run_dir
    loader = PretrainLoader(setup.data_dir, cfg.batch_size, seed=cfg.seed, rank=info.rank, world_size=info.world_size)
    _check_data(loader, setup)
    plan = plan_batches(cfg.batch_size, info.world_size, opts.micro_batch_size, cfg.max_length)
    check_compile_plan(opts.compile, plan)
    precision = choose_precision(opts.precision, info.device)
    if precision.name == "bf16" and info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    torch.manual_seed(cfg.seed)  # the initial weights (identical on every process)
    model = setup.init_model or ELECTRA(cfg, SpecialIds.from_tokenizer(setup.tokenizer))
    if cfg.output_bias_init == "prior" and setup.init_model is None and setup.resume_from is None:
        model.init_output_biases(torch.from_numpy(loader.token_counts(cfg.model.vocab_size)))
    model.to(info.device)
    optimizer = build_optimizer(model, cfg)
    scaler = precision.scaler()
    step = 0
    if setup.resume_from is not None:
        state = ckpt.load_checkpoint(setup.resume_from, model, optimizer, scaler, restore_rng=True)
        loader.load_state_dict(state["loader"])
        step = int(state["step"])
    run_config = ckpt.run_config(cfg, asdict(opts), _data_info(loader, setup))
    if info.is_main:
        rundir.start(run_dir, run_config, setup.tokenizer, fresh=setup.resume_from is None)
    dist.barrier(info)
    cudagraphs = compile_model(model, opts.compile) if opts.compile else False
    wrapped: nn.Module = model
    if info.distributed:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=cfg.uniform_generator,
        )  # fmt: skip
    eval_batches = list(loader.holdout(plan.micro))[: max(0, -(-opts.eval_examples // plan.micro))]
    flops_per_seq = train_flops_per_sequence(cfg)
    keep = ckpt.fraction_steps(cfg.max_steps)
    log = rundir.MetricsLog(run_dir, step, opts.wandb, run_config) if info.is_main else None
    bar = _progress_bar(cfg.max_steps, step, opts.progress and info.is_main)
    _print_header(cfg, plan, precision, info, model, flops_per_seq, step, setup)
    live_probe = LiveProbe.start(opts, cfg, setup.tokenizer, info.device) if info.is_main and eval_batches else None
    last: dict[str, Any] = {}
    last_saved = setup.resume_from
    interval_time, interval_steps, interval_tokens = 0.0, 0, 0
    halted = torch.zeros((), dtype=torch.bool, device=info.device)  # set by the first non-finite step
    unread: list[tuple[int, StepResult]] = []  # read at the next step that logs, evaluates or saves
    try:
        model.train()
        while step < cfg.max_steps:
            t0 = time.perf_counter()
            batch = to_device(next(loader), info.device)
            lr = set_learning_rate(optimizer, cfg, step)
            r = train_step(model, wrapped, optimizer, scaler, batch, step, cfg, plan, info, precision, cudagraphs,
                           halted)  # fmt: skip
            step += 1
            unread.append((step, r))
            logging_step = step % opts.log_every == 0 or step == cfg.max_steps
            eval_step = bool(eval_batches) and opts.eval_every and (step % opts.eval_every == 0
                                                                    or step == cfg.max_steps)  # fmt: skip
            save_step = step in keep or step % opts.save_every == 0 or step == cfg.max_steps
            if logging_step or eval_step or save_step:
                try:
                    rows = read_steps(unread)  # waits for the GPU; nothing is logged or saved past a bad step
                except NonFiniteLoss as err:
                    kept = f"the last good checkpoint is {last_saved}" if last_saved else "no checkpoint was written"
                    raise ElectraError(f"{err}; {kept}") from None
                interval_tokens += sum(int(row["tokens"]) for _, row in rows)
            interval_time += time.perf_counter() - t0
            interval_steps += 1
            if logging_step:
                v = rows[-1][1]
                seqs = interval_steps * cfg.batch_size / interval_time
                last = {"split": "train", "step": step, "loss": v["loss"], "gen_loss": v["gen_loss"],
                        "disc_loss": v["disc_loss"], "lr": lr, "grad_norm": v["grad_norm"],
                        "gen_accuracy": v["gen_accuracy"], "disc_accuracy": v["disc_accuracy"],
                        "replaced_fraction": v["replaced_fraction"], "seqs_per_s": seqs,
                        "tokens_per_s": seqs * cfg.max_length, "real_tokens_per_s": interval_tokens / interval_time,
                        "flops_per_s": seqs * flops_per_seq}  # fmt: skip
                interval_time, interval_steps, interval_tokens = 0.0, 0, 0
                if log:
                    log.write(last)
                _report(bar, last, step, cfg.max_steps)
            if eval_step:
                if info.is_main:
                    record = {"split": "eval", "step": step, **evaluate(model, eval_batches, cfg, precision,
                                                                        info.device, cudagraphs)}  # fmt: skip
                    if live_probe is not None:
                        record.update(live_probe(model))
                    log.write(record)
                    _say(bar, "eval  " + "  ".join(f"{k} {v:.4f}" for k, v in record.items()
                                                   if k not in ("split", "step")) + f"  (step {step})")  # fmt: skip
                dist.barrier(info)
            if save_step:
                if info.is_main:
                    last_saved = rundir.save(
                        run_dir,
                        step=step,
                        max_steps=cfg.max_steps,
                        model=model,
                        optimizer=optimizer,
                        scaler=scaler,
                        loader_state=loader.state_dict(),
                        world_size=info.world_size,
                        run_config=run_config,
                        tokenizer=setup.tokenizer,
                        keep=keep,
                    )
                dist.barrier(info)
        if bar is not None:
            bar.close()
    finally:
        if log:
            log.close()
    return last


def _check_data(loader, setup: Setup) -> None:
    cfg, tok = setup.cfg, loader.tokenizer
    if loader.max_length != cfg.max_length:
        raise ElectraError(
            f"{setup.data_dir} was prepared with max length {loader.max_length}, but the config has "
            f"max_length {cfg.max_length}; prepare it again or pass --max-length {loader.max_length}"
        )
    if tok.vocab_size != cfg.model.vocab_size:
        raise ElectraError(f"{setup.data_dir} uses a vocabulary of {tok.vocab_size} tokens, but --vocab-size is "
                           f"{cfg.model.vocab_size}; leave --vocab-size out to use the data's")  # fmt: skip
    if tok.fingerprint() != setup.tokenizer.fingerprint():
        raise ElectraError(f"{setup.data_dir} was prepared with another tokenizer than the model's "
                           f"({setup.tokenizer.source}); prepare the corpus with that tokenizer")  # fmt: skip
    saved = setup.run_meta.get("data")
    if setup.resume_from is not None and saved and saved.get("key") != loader.meta.get("key"):
        raise ElectraError(
            f"cannot resume {setup.run_dir}: it was trained on other data ({saved.get('path')}, "
            f"key {saved.get('key')}) than {setup.data_dir} (key {loader.meta.get('key')})"
        )


def _data_info(loader, setup: Setup) -> dict[str, Any]:
    return {
        "path": str(Path(setup.data_dir).resolve()),
        "key": loader.meta.get("key"),
        "num_examples": loader.num_examples,
        "tokenizer_fingerprint": loader.tokenizer.fingerprint(),
    }


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr, disable=None
    )  # fmt: skip  (None: off when stderr is not a terminal)


def _say(bar, text: str) -> None:
    if bar is not None and not bar.disable:
        bar.write(text)
    else:
        dist.print0(text, flush=True)


def _report(bar, r: dict[str, Any], step: int, total: int) -> None:
    if bar is not None and not bar.disable:
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{r['loss']:.3f}", gen=f"{r['gen_accuracy']:.3f}", disc=f"{r['disc_accuracy']:.3f}",
                        seq_s=f"{r['seqs_per_s']:.1f}", refresh=False)  # fmt: skip
    else:
        dist.print0(f"step {step}/{total}  loss {r['loss']:.4f}  gen {r['gen_loss']:.3f}  disc {r['disc_loss']:.4f}"
                    f"  lr {r['lr']:.3g}  {r['seqs_per_s']:.1f} seq/s  {r['tokens_per_s']:.0f} tok/s  "
                    f"{format_flops(r['flops_per_s'])}FLOP/s", flush=True)  # fmt: skip


def _print_header(cfg, plan, precision, info, model, flops_per_seq, step, setup) -> None:
    from electra.model import count_parameters

    what = f"resuming from {setup.resume_from} at step {step}" if setup.resume_from else "starting"
    dist.print0(
        f"pretrain: {what}; {count_parameters(model) / 1e6:.2f}M parameters, {info.world_size} process(es) on "
        f"{info.device.type}, {precision.name}, {'compile ' + setup.opts.compile if setup.opts.compile else 'eager'}\n"
        f"  global batch {plan.global_batch} = {info.world_size} x {plan.accum} micro-batch(es) of {plan.micro}, "
        f"length {cfg.max_length}, {cfg.max_steps} steps\n"
        f"  learning rate {cfg.learning_rate:g} ({cfg.schedule} schedule), warm-up {cfg.warmup_steps} steps, peak "
        f"{cfg.learning_rate * peak_lr_factor(cfg.max_steps, cfg.warmup_steps, cfg.lr_decay_power, cfg.schedule):.3g}\n"
        f"  {format_flops(flops_per_seq)}FLOP per sequence (paper count: forward + backward = 2 x forward); "
        f"total {format_flops(flops_per_seq * cfg.batch_size * cfg.max_steps)}FLOP",
        flush=True,
    )
    if info.device.type == "cuda" and not setup.opts.compile:
        dist.print0("  (on a GPU, --compile reduce-overhead trains small models several times faster: "
                    "docs/pretraining.md, 'Throughput and FLOPs')", flush=True)  # fmt: skip


# ---------------------------------------------------------------------------------------------- CLI


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset", choices=list(PRESETS), help="model/recipe preset (docs/faithfulness.md §1); optional on --resume"
    )
    parser.add_argument("--data", metavar="DIR", help="a dataset directory from `electra prepare`")
    parser.add_argument(
        "--corpus", nargs="+", metavar="SRC", help="prepare these sources on the fly instead (cached in --data-cache)"
    )
    parser.add_argument("--vocab", metavar="SRC", help="tokenizer for --corpus: vocab.txt, directory or hub id")
    parser.add_argument("--data-cache", metavar="DIR", help="where --corpus is prepared (default RUN_DIR/data)")
    parser.add_argument("--prepare-workers", type=int, metavar="N", help="processes for --corpus")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (checkpoints, metrics)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN_DIR exactly from its latest checkpoint (starts fresh if it has none); "
        "options not given again are the run's own",
    )
    parser.add_argument("--force", action="store_true", help="start over in a RUN_DIR that already holds a run")
    parser.add_argument(
        "--init-from",
        nargs="+",
        metavar=("DISC", "GEN"),
        help="continued pretraining from HF-format discriminator [and generator] directories or hub "
        "ids (weights only; the step count and schedule start at 0). To continue a released "
        "model the way the official README does (global step 4e6 + extra, lr rescaled), use "
        "--max-steps EXTRA --warmup-steps 0: the schedule is then identical",
    )
    parser.add_argument("--log-every", type=int, metavar="N", help="log every N steps (default 10)")
    parser.add_argument(
        "--save-every", type=int, metavar="N", help="rewrite checkpoints/latest every N steps (default 1000)"
    )
    parser.add_argument(
        "--eval-every", type=int, metavar="N", help="held-out evaluation every N steps (default 1000; 0: never)"
    )
    parser.add_argument(
        "--eval-examples", type=int, metavar="N", help="held-out examples per evaluation (default 1000)"
    )
    parser.add_argument(
        "--micro-batch-size",
        type=int,
        metavar="B",
        help="sequences per forward per process (gradient accumulation = batch / processes / B; "
        f"default: the whole per-process batch, or less to stay within {MAX_MICRO_TOKENS} "
        "positions)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="auto: bf16 on GPUs that support it, fp16 with a gradient scaler on older GPUs, fp32 on CPU",
    )
    add_compile_argument(parser)
    parser.add_argument("--device", default="auto", help="auto (this process's GPU, else CPU), cpu, cuda, cuda:N")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--wandb", metavar="PROJECT", help="also log to this Weights & Biases project")
    parser.add_argument(
        "--probe",
        metavar="SET",
        help="linear probe on the frozen features at every evaluation, beside the same probe on "
        "random weights: builtin (default; no download), glue:<task> (with --glue-dir), a "
        "CSV/TSV/JSONL file with text and label columns, or none",
    )
    parser.add_argument("--glue-dir", metavar="DIR", help="GLUE data for a glue:<task> probe")
    add_config_arguments(parser, PretrainConfig, type(PretrainConfig().model))


def pretrain(out: str | os.PathLike, preset: str | None = None, **settings: Any) -> dict[str, Any]:
    """Pretrain (or with resume=True continue) the run in `out`; what `electra pretrain` does.

    `preset` names the model and recipe (optional on resume); `settings` are run options (the `RunOptions`
    fields: data or corpus + vocab, resume, force, eval_every, probe, device, ...) and config fields that override
    the preset's (max_steps, learning_rate, hidden_size, ...). Returns the last logged training record.

        from electra.api import pretrain
        pretrain("runs/tiny", preset="tiny", corpus=["builtin"], vocab="vocab.txt", max_steps=200)
    """
    fields = set(RunOptions.__dataclass_fields__) | {"device"}
    config_fields = {name for name, _ in flat_fields(PretrainConfig, ModelConfig)}
    for key in settings:
        if key not in fields | config_fields:
            raise ElectraError(unknown_key_message(key, fields | config_fields, "the pretraining settings"))
    given = {k: _plain(v) for k, v in settings.items() if k in fields}
    overrides = {k: v for k, v in settings.items() if k in config_fields and k not in fields}
    given["out"] = str(out)
    info = dist.init_from_env(given.pop("device", "auto"))
    lock, created = None, not Path(out).exists()
    try:
        if info.is_main:  # one writer per run directory; the other processes of a torchrun job only read it
            lock = rundir.lock(Path(out))
            if lock.stale:
                print(f"  ({out} was last written by {lock.stale}, which has ended)", flush=True)
        setup = resolve_setup(given, preset, overrides, info)
        if setup.resume_from is not None:
            state = json.loads((setup.resume_from / ckpt.TRAINER_STATE).read_text())
            if state.get("finished"):
                if info.is_main and not setup.run_meta.get("finished"):  # killed just before saying so
                    io.write_json(setup.run_dir / ckpt.CONFIG, {**setup.run_meta, "finished": True})
                dist.print0(f"{setup.run_dir} is already finished ({state['step']} steps); nothing to do")
                return {"step": state["step"]}
        elif setup.opts.resume:
            dist.print0(f"{setup.run_dir} has no checkpoint yet: starting from scratch")
        last = train(setup, info)
        dist.print0(f"done: {setup.run_dir}  ({json.dumps({k: last[k] for k in ('step', 'loss') if k in last})})")
        return last
    except BaseException:
        if created and info.is_main and {p.name for p in Path(out).iterdir()} <= {io.LOCK_FILE}:
            shutil.rmtree(out, ignore_errors=True)  # nothing was written: leave nothing behind
        raise
    finally:
        if lock is not None:
            lock.release()
        dist.cleanup()


def _plain(value: Any) -> Any:
    """Paths as strings (the options are recorded in the run's config.json)."""
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def resolved_pretrain_config(args: argparse.Namespace) -> dict[str, Any]:
    """What `--print-config` shows: the config (preset + overrides) and options, as a run's config.json has them
    (and `--config` reads them back)."""
    overrides = overrides_from_args(args)
    if args.preset is None and args.resume and (Path(args.out) / ckpt.CONFIG).is_file():
        cfg = _apply(ckpt.pretrain_config(ckpt.read_run_config(args.out), args.out), overrides)
    else:
        cfg = config_from(args.preset, overrides)
    options = {k: getattr(args, k) for k in RunOptions.__dataclass_fields__ if hasattr(args, k)}
    return ckpt.run_config(cfg, asdict(run_options(options, None)), {})


def run_pretrain(args: argparse.Namespace) -> int:
    options = {k: getattr(args, k) for k in [*RunOptions.__dataclass_fields__, "device"] if hasattr(args, k)}
    pretrain(args.out, args.preset, **{k: v for k, v in options.items() if k != "out"}, **overrides_from_args(args))
    return 0
