"""`electra pretrain`: train generator and discriminator jointly, as the paper did, on 1 CPU to many GPUs; any
number of processes computes the same steps, and a resumed run repeats an uninterrupted one (docs/faithfulness.md)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from electra import checkpoint as ckpt
from electra import dist, init, io
from electra.config import ModelConfig, PretrainConfig, flat_fields, unknown_key_message
from electra.data.loader import count_ids
from electra.errors import ElectraError
from electra.flops import train_flops_per_sequence
from electra.fused import apply_speed_variants
from electra.model import ELECTRA
from electra.objective import SpecialIds, unigram_log_probs
from electra.train import console, outputs
from electra.train import step as one_step
from electra.train.rundir import RunOptions, Setup, check_data, data_info, resolve_setup
from electra.train.stopping import Stopped, StopSignals, signal_name

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from electra.train.fields import PretrainSettings

# Something evaluated beside the held-out losses at every evaluation, on the main process (the live probe:
# `electra.probe.live_probe`): made once from the run's setup and device (None: nothing to evaluate), then called with
# the model; returns the metrics to log with the evaluation.
Evaluator = Callable[[nn.Module], dict[str, float]]
EvaluatorFactory = Callable[[Setup, torch.device], Evaluator | None]

TRAIN_KEYS = ("loss", "gen_loss", "disc_loss", "lr", "grad_norm", "gen_accuracy", "disc_accuracy", "replaced_fraction")
WORD_INIT_TOKENS = 20_000_000  # --word-init ppmi counts co-occurrences in at most this many training tokens


def init_word_vectors(model: ELECTRA, loader: Any) -> tuple[int, int]:
    """`--word-init ppmi`: the word tables start at the PPMI vectors of the first `WORD_INIT_TOKENS` training tokens,
    drawing nothing from the random stream. Returns (rows set, tokens counted)."""
    vocab_size, dim = model.cfg.model.vocab_size, model.cfg.model.embedding_size
    examples = list(loader.train_examples(WORD_INIT_TOKENS))
    vectors = torch.from_numpy(init.ppmi_vectors(examples, vocab_size, dim))
    counts = count_ids(examples, vocab_size)  # the same examples, read once
    return init.init_word_vectors(model, vectors, torch.from_numpy(counts)), sum(len(e) for e in examples)


def train(
    setup: Setup, info: dist.DistInfo, evaluators: Sequence[EvaluatorFactory] = (), stop: StopSignals | None = None
) -> dict[str, Any]:
    """Set up model, optimizer, data and logs, then run the loop; returns the last logged training record. A
    SIGTERM or SIGINT (`stop`) ends it at the next step with a checkpoint, raising `Stopped`."""
    from electra.data import PretrainLoader

    cfg, opts, run_dir = setup.cfg, setup.opts, setup.run_dir
    loader = PretrainLoader(setup.data_dir, cfg.batch_size, seed=cfg.seed, rank=info.rank, world_size=info.world_size)
    check_data(loader, setup)
    plan = one_step.plan_batches(cfg.batch_size, info.world_size, opts.micro_batch_size, cfg.max_length)
    one_step.check_compile_plan(opts.compile, plan)
    precision = one_step.choose_precision(opts.precision, info.device)
    if precision.name == "bf16" and info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    torch.manual_seed(cfg.seed)  # the initial weights (identical on every process)
    model = setup.init_model or init.build(cfg, SpecialIds.from_tokenizer(setup.tokenizer))
    init_prior = cfg.output_bias_init == "prior" and setup.init_model is None and setup.resume_from is None
    # the held-out word-frequency baselines (electra.train.step.evaluate), on the process that evaluates, if it does
    frequency_baselines = info.is_main and bool(opts.eval_every)
    # token counts (a pass over up to 50M training tokens): read once, and only for the prior or that baseline
    counts = torch.from_numpy(loader.token_counts(cfg.model.vocab_size)) if init_prior or frequency_baselines else None
    if init_prior:
        init.init_output_biases(model, counts)
    if setup.init_model is not None and setup.resume_from is None and hasattr(model, "word_start"):
        model.word_start.copy_(init.word_table(model)[1])  # --init-from: the imported table is where this run starts
    if cfg.word_init == "ppmi" and setup.init_model is None and setup.resume_from is None:
        started = time.perf_counter()
        rows, n_tokens = init_word_vectors(model, loader)
        dist.print0(
            f"  word table: PPMI vectors of {n_tokens:,} training tokens for {rows:,} of {cfg.model.vocab_size:,} "
            f"ids ({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
    if cfg.freeze_word_embeddings:
        init.freeze_word_tables(model)
    model.to(info.device)
    optimizer = one_step.build_optimizer(model, cfg)
    scaler = precision.scaler()
    step = 0
    if setup.resume_from is not None:
        state = ckpt.load_checkpoint(setup.resume_from, model, optimizer, scaler, restore_rng=True)
        loader.load_state_dict(state["loader"])
        step = int(state["step"])
    run_config = ckpt.run_config(cfg, asdict(opts), data_info(loader, setup))
    run_config["environment"] = {"device": info.device.type, "cpu_threads": torch.get_num_threads()}
    console.note_thread_change(setup, info)
    if info.is_main:
        outputs.start(run_dir, run_config, setup.tokenizer, fresh=setup.resume_from is None)
    dist.barrier(info)
    cudagraphs = (
        one_step.compile_model(model, opts.compile, gemm_epilogues=opts.gemm_epilogues) if opts.compile else False
    )
    update = apply_speed_variants(
        model, optimizer, fused_generator_head=opts.fused_generator_head, graph_optimizer=opts.graph_optimizer,
        compile_mode=opts.compile, gradient_scaler=scaler is not None, max_grad_norm=cfg.max_grad_norm,
        gemm_epilogues=opts.gemm_epilogues,
    )  # fmt: skip
    wrapped: nn.Module = model
    if info.distributed:
        wrapped = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=cfg.uniform_generator,
            broadcast_buffers=False,  # the only buffer, word_start, is the same on every process and never changes
        )
    eval_batches = list(loader.holdout(plan.micro))[: max(0, -(-opts.eval_examples // plan.micro))]
    rarity = -unigram_log_probs(counts) if frequency_baselines and eval_batches else None
    flops_per_seq = train_flops_per_sequence(cfg)
    keep = ckpt.fraction_steps(cfg.max_steps)
    log = outputs.MetricsLog(run_dir, step, opts.wandb, run_config) if info.is_main else None
    bar = console.progress_bar(cfg.max_steps, step, opts.progress and info.is_main)
    console.print_header(cfg, plan, precision, info, model, flops_per_seq, step, setup)
    live = (
        [e for make in evaluators if (e := make(setup, info.device)) is not None]
        if info.is_main and eval_batches
        else []
    )
    last: dict[str, Any] = {}
    last_saved = setup.resume_from
    interval_time, interval_steps, interval_tokens = 0.0, 0, 0
    halted = torch.zeros((), dtype=torch.bool, device=info.device)  # set by the first non-finite step
    unread: list[tuple[int, one_step.StepResult]] = []  # read at the next step that logs, evaluates or saves
    stop = stop or StopSignals()
    step_options = dict(cfg=cfg, plan=plan, info=info, precision=precision, cudagraphs=cudagraphs, halted=halted)
    step_options["update"] = update
    try:
        model.train()
        stop.arm()
        while step < cfg.max_steps:
            t0 = time.perf_counter()
            batch = one_step.to_device(next(loader), info.device)
            lr = one_step.set_learning_rate(optimizer, cfg, step)
            r = one_step.train_step(model, wrapped, optimizer, scaler, batch, step=step, **step_options)
            step += 1
            unread.append((step, r))
            logging_step = step % opts.log_every == 0 or step == cfg.max_steps
            eval_step = (
                bool(eval_batches) and opts.eval_every and (step % opts.eval_every == 0 or step == cfg.max_steps)
            )
            stopping = stop.requested(info, check_all=step % opts.log_every == 0)  # a SIGTERM or SIGINT came
            save_step = step in keep or step % opts.save_every == 0 or step == cfg.max_steps or bool(stopping)
            if logging_step or eval_step or save_step:
                try:
                    rows = one_step.read_steps(unread)  # waits for the GPU; nothing is logged or saved past a bad step
                except one_step.NonFiniteLoss as err:
                    kept = f"the last good checkpoint is {last_saved}" if last_saved else "no checkpoint was written"
                    raise ElectraError(f"{err}; {kept}") from None
                interval_tokens += sum(int(row["tokens"]) for _, row in rows)
            interval_time += time.perf_counter() - t0
            interval_steps += 1
            if logging_step:
                v = rows[-1][1]
                seqs = interval_steps * cfg.batch_size / interval_time
                last = {"split": "train", "step": step, **{k: lr if k == "lr" else v[k] for k in TRAIN_KEYS}}
                last |= {
                    "seqs_per_s": seqs,
                    "tokens_per_s": seqs * cfg.max_length,
                    "real_tokens_per_s": interval_tokens / interval_time,
                    "flops_per_s": seqs * flops_per_seq,
                }
                interval_time, interval_steps, interval_tokens = 0.0, 0, 0
                if log:
                    log.write(last)
                console.report_step(bar, last, step, cfg.max_steps)
            if eval_step:
                if info.is_main:
                    record = {"split": "eval", "step": step}
                    record.update(
                        one_step.evaluate(model, eval_batches, cfg, precision, info.device, cudagraphs, rarity)
                    )
                    for evaluate_more in live:
                        record.update(evaluate_more(model))
                    log.write(record)
                    console.say(
                        bar,
                        "eval  "
                        + "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("split", "step"))
                        + f"  (step {step})",
                    )
                dist.barrier(info)
            if save_step:
                if info.is_main:
                    last_saved = outputs.save(
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
            if stopping and step < cfg.max_steps:
                if bar is not None:
                    bar.close()
                raise Stopped(
                    f"stopped by {signal_name(stopping)} after step {step} of {cfg.max_steps}; checkpoint saved in "
                    f"{run_dir / ckpt.CHECKPOINTS / ckpt.LATEST}: the same command with --resume continues the run",
                    stopping,
                )
        if bar is not None:
            bar.close()
    finally:
        if log:
            log.close()
    return last


def pretrain(
    out: str | os.PathLike,
    preset: str | None = None,
    *,
    evaluators: Sequence[EvaluatorFactory] = (),
    **settings: Unpack[PretrainSettings],
) -> dict[str, Any]:
    """Pretrain (or with resume=True continue) the run in `out`; `settings`: `RunOptions` and config fields. Returns
    the last logged training record."""
    fields = set(RunOptions.__dataclass_fields__) | {"device"}
    config_fields = {name for name, _ in flat_fields(PretrainConfig, ModelConfig)}
    for key in settings:
        if key not in fields | config_fields:
            raise ElectraError(unknown_key_message(key, fields | config_fields, "the pretraining settings"))
    given = {k: _plain(v) for k, v in settings.items() if k in fields}
    overrides = {k: v for k, v in settings.items() if k in config_fields and k not in fields}
    given["out"] = str(out)
    info = dist.init_from_env(given.get("device") or "auto")
    try:
        # one writer per run directory; the other processes of a torchrun job only read it. A SIGTERM or SIGINT
        # stops at once while setting up, and at the next step boundary, with a checkpoint, while training.
        with StopSignals() as stop, io.claimed(out, "run directory", lock=info.is_main, clean_up=info.is_main) as lock:
            if lock is not None and lock.stale:
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
            last = train(setup, info, evaluators, stop)
            summary = json.dumps({k: last[k] for k in ("step", "loss") if k in last})
            dist.print0(f"done: {setup.run_dir}  ({summary})")
            return last
    finally:
        dist.cleanup()


def _plain(value: Any) -> Any:
    """Paths as strings (the options are recorded in the run's config.json)."""
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
