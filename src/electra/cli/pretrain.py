"""`electra pretrain` and `electra bench`: their options and the calls into `electra.api` / `electra.train.bench`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from electra.cli.options import SPEED_FIELDS, add_config_arguments, overrides_from_args
from electra.config import COMPILE_MODES, COMPILE_SCOPES, MAX_MICRO_TOKENS, PRESETS, ModelConfig, PretrainConfig


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    logs = parser.add_argument_group("checkpoints, logs and evaluation")
    speed = parser.add_argument_group("hardware and speed")
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
    resume = "continue RUN_DIR exactly from its latest checkpoint (starts fresh if it has none); options not given "
    parser.add_argument("--resume", action="store_true", help=resume + "again are the run's own")
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
    logs.add_argument("--log-every", type=int, metavar="N", help="log every N steps (default 10)")
    logs.add_argument(
        "--save-every", type=int, metavar="N", help="rewrite checkpoints/latest every N steps (default 1000)"
    )
    logs.add_argument(
        "--eval-every", type=int, metavar="N", help="held-out evaluation every N steps (default 1000; 0: never)"
    )
    logs.add_argument("--eval-examples", type=int, metavar="N", help="held-out examples per evaluation (default 1000)")
    speed.add_argument(
        "--micro-batch-size",
        type=int,
        metavar="B",
        help="sequences per forward per process (gradient accumulation = batch / processes / B; "
        f"default: the whole per-process batch, or less to stay within {MAX_MICRO_TOKENS} "
        "positions)",
    )
    precision = "auto: bf16 on GPUs that support it, fp16 with a gradient scaler on older GPUs, fp32 on CPU"
    speed.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), help=precision)
    add_compile_argument(speed)
    add_variant_arguments(speed)
    speed.add_argument("--device", default="auto", help="auto (this process's GPU, else CPU), cpu, cuda, cuda:N")
    logs.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    logs.add_argument("--wandb", metavar="PROJECT", help="also log to this Weights & Biases project")
    logs.add_argument(
        "--probe",
        metavar="SET",
        help="linear probe on the frozen features at every evaluation, beside the same probe on "
        "random weights: builtin (default; no download), glue:<task> (with --glue-dir), a "
        "CSV/TSV/JSONL file with text and label columns, or none",
    )
    logs.add_argument("--glue-dir", metavar="DIR", help="GLUE data for a glue:<task> probe")
    add_config_arguments(parser, PretrainConfig, ModelConfig)


def resolved_pretrain_config(args: argparse.Namespace) -> dict[str, Any]:
    """What `--print-config` shows: the config (preset + overrides) and options, as a run's config.json has them
    (and `--config` reads them back)."""
    from dataclasses import asdict

    from electra import checkpoint as ckpt
    from electra.train.rundir import RunOptions, apply_overrides, config_from, run_options

    overrides = overrides_from_args(args)
    if args.preset is None and args.resume and (Path(args.out) / ckpt.CONFIG).is_file():
        cfg = apply_overrides(ckpt.pretrain_config(ckpt.read_run_config(args.out), args.out), overrides)
    else:
        cfg = config_from(args.preset, overrides)
    options = {k: getattr(args, k) for k in RunOptions.__dataclass_fields__ if hasattr(args, k)}
    return ckpt.run_config(cfg, asdict(run_options(options, None)), {})


def run_pretrain(args: argparse.Namespace) -> int:
    from electra.api import pretrain
    from electra.train.rundir import RunOptions

    options = {k: getattr(args, k) for k in [*RunOptions.__dataclass_fields__, "device"] if hasattr(args, k)}
    pretrain(args.out, args.preset, **{k: v for k, v in options.items() if k != "out"}, **overrides_from_args(args))
    return 0


def add_compile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        choices=COMPILE_MODES,
        metavar="MODE",
        help="torch.compile the model's forward; MODE: default (when omitted), "
        "reduce-overhead (CUDA graphs: fastest for small models on GPUs), max-autotune, "
        "max-autotune-no-cudagraphs",
    )


def add_variant_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The speed variants of `electra.fused`: the same losses, fewer passes through memory or launches."""
    parser.add_argument(
        "--fused-generator-head",
        action="store_true",
        default=None,
        help="the generator's output layer, loss, argmax and Gumbel sampling over the masked slots chunk by chunk, "
        "never holding all their vocabulary logits (needs --sampling gumbel)",
    )
    parser.add_argument(
        "--graph-optimizer",
        action="store_true",
        default=None,
        help="gradient clipping and the AdamW update as one compiled function (with --compile's mode, else "
        "default): inside a CUDA graph with reduce-overhead (not with fp16)",
    )
    parser.add_argument(
        "--gemm-epilogues",
        action="store_true",
        default=None,
        help="with --compile: inductor's own GEMM kernels where faster than the vendor's, with the bias, exact "
        "GELU, dropout and residual fused in (fewer, larger kernels; autotuning adds minutes to the compile)",
    )


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, choices=list(PRESETS))
    parser.add_argument("--batch", type=int, help="sequences per step (default: the preset's batch)")
    parser.add_argument("--seq-len", type=int, help="sequence length (default: the preset's max_length)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 3; 10 with --compile)")
    parser.add_argument("--micro-batch-size", type=int, help="gradient accumulation as in `electra pretrain`")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    add_compile_argument(parser)
    scope = "what --compile compiles: the whole model forward (default), or the generator and discriminator only "
    parser.add_argument(
        "--compile-scope", default="model", choices=COMPILE_SCOPES, help=scope + "(losses and sampling eager)"
    )
    add_variant_arguments(parser)
    parser.add_argument("--device", default="auto")
    json_help = 'print {"tokens_per_s": ..., "seqs_per_s": ..., "peak_mem_mb": ...} and more'
    parser.add_argument("--json", action="store_true", help=json_help)
    add_config_arguments(parser, PretrainConfig, ModelConfig, only=SPEED_FIELDS, description="what changes the speed")


def run_bench(args: argparse.Namespace) -> int:
    from electra.config import preset
    from electra.flops import format_flops
    from electra.train.bench import measure

    overrides = overrides_from_args(args)
    if args.batch:
        overrides["batch_size"] = args.batch
    if args.seq_len:
        overrides["max_length"] = args.seq_len
    cfg = preset(args.preset, **overrides)
    warmup = args.warmup if args.warmup is not None else (10 if args.compile else 3)
    options = (args.precision, args.compile, args.device, args.micro_batch_size, args.compile_scope)
    names = ("fused_generator_head", "graph_optimizer", "gemm_epilogues")
    r = measure(cfg, args.steps, warmup, *options, **{name: bool(getattr(args, name)) for name in names})
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"{args.preset}: {r['params'] / 1e6:.1f}M parameters, batch {r['batch']} x {r['seq_len']}, "
            f"{r['precision']}{' + compile ' + r['compile'] if r['compile'] else ''} on {r['device']}\n"
            f"  {r['seqs_per_s']:.1f} sequences/s  {r['tokens_per_s']:.0f} tokens/s  "
            f"{format_flops(r['flops_per_s'])}FLOP/s (paper count)  peak memory {r['peak_mem_mb']:.0f} MB"
        )
    return 0
