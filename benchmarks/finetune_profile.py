"""Where a finetuning sweep's wall time goes, for one or more source trees and a `transformers.Trainer` script, in
one run.

Each variant is a fresh process (so process start and imports count, as for a user), running the GLUE sweep through
the API `electra finetune` calls. Its phases are timed by wrapping the sweep's functions: imports, reading and
featurising the tasks, reading the encoder, building the models, training steps, dev evaluation, test prediction,
writing files, and the rest. `--trainer` adds a script a user of `transformers` would write for the same protocol:
`ElectraForSequenceClassification` of the same shape and random initialisation, the same featurised examples (the
same subsample, MRPC/STS-B doubled), epochs, batch size, warm-up and learning rate, dynamic padding, and each run's
dev evaluation at the end, through `transformers.Trainer`.

    python benchmarks/finetune_profile.py --glue-dir GLUE --model random:tiny --tokenizer VOCAB \\
        --variant before=/path/to/old/src --variant after=src --trainer --threads 1 --side-by-side \\
        --tasks cola,sst2,mrpc,stsb,rte --runs 3 --max-train-examples 2000 --epochs 3 --batch-size 16 \\
        --json benchmarks/results/finetune_profile.json

`--side-by-side` runs the variants at the same time (one process each, `--threads` each), so that machine load is
shared alike; otherwise one after the other. The output folders are temporary.
"""

from __future__ import annotations

import time

STARTED = time.time()  # before any import: process start is measured against the launch time the driver passes

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

PHASES = ("start", "imports", "featurise", "load", "build", "train", "dev", "test", "write", "other")


def protocol_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--glue-dir", required=True)
    parser.add_argument("--model", default="random:tiny")
    parser.add_argument("--tokenizer", required=True, help="vocab file or directory (required for random:<preset>)")
    parser.add_argument("--tasks", default="cola,sst2,mrpc,stsb,rte")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-train-examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--extra", default="{}", help="JSON of more finetuning options for the electra variants")


# ---------------------------------------------------------------------------------------------- one variant


class Clock:
    """Seconds per phase; a phase entered inside another is not counted twice."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.depth = 0

    def wrap(self, phase, fn):
        def timed(*args, **kwargs):
            self.depth += 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.seconds[phase] += time.perf_counter() - t

        return timed


def electra_worker(args, out: Path, clock: Clock) -> dict:
    t = time.perf_counter()
    import torch

    from electra.api import finetune
    from electra.finetune import glue, sweep

    clock.seconds["imports"] += time.perf_counter() - t
    torch.set_num_threads(args.threads)
    kinds = {}  # id(features) -> dev | test

    def prepare_task(*a, **k):
        data = real_prepare(*a, **k)
        if data is not None:
            kinds.update({id(f): "dev" for f in data.evals.values()})
            kinds.update({id(f): "test" for f in data.tests.values()})
        return data

    real_prepare, real_predict = glue.prepare_task, glue.predict
    glue.prepare_task = clock.wrap("featurise", prepare_task)
    glue.predict = lambda model, feats, *a, **k: clock.wrap(kinds.get(id(feats), "dev"), real_predict)(
        model, feats, *a, **k
    )
    glue.build_model = clock.wrap("build", glue.build_model)
    glue.fit = clock.wrap("train", glue.fit)
    glue.write_results = clock.wrap("write", glue.write_results)
    glue.GlueRuns.write = clock.wrap("write", glue.GlueRuns.write)
    sweep.load_encoder = clock.wrap("load", sweep.load_encoder)
    options = dict(epochs=args.epochs, batch_size=args.batch_size, max_train_examples=args.max_train_examples)
    results = finetune(
        args.model, out, args.tasks, args.glue_dir, args.runs, tokenizer=args.tokenizer, quiet=True, device="cpu",
        **options, **json.loads(args.extra),
    )  # fmt: skip
    return {name: task["metrics"] for name, task in results["tasks"].items()}


def trainer_worker(args, out: Path, clock: Clock) -> dict:
    t = time.perf_counter()
    import numpy as np
    import torch
    from transformers import (
        DataCollatorWithPadding,
        ElectraForSequenceClassification,
        PreTrainedTokenizerFast,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging

    from electra.config import FinetuneConfig, preset
    from electra.finetune import glue
    from electra.finetune.metrics import compute_metrics
    from electra.finetune.tasks import parse_tasks
    from electra.hf import hf_config
    from electra.tokenizer import load_tokenizer

    clock.seconds["imports"] += time.perf_counter() - t
    logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.tokenizer)
    model_cfg = preset(args.model.split(":", 1)[1], vocab_size=tok.vocab_size).model
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok.backend, pad_token="[PAD]")
    collator = DataCollatorWithPadding(hf_tok)
    scores = {}
    for task in parse_tasks(args.tasks):
        t = time.perf_counter()
        cfg = FinetuneConfig(epochs=args.epochs, batch_size=args.batch_size, max_train_examples=args.max_train_examples)
        cfg = cfg.resolve(model_cfg, task)
        data = glue.prepare_task(task, args.glue_dir, tok, cfg)

        def rows(feats, task=task):
            labels = feats.labels.astype(np.float32 if task.is_regression else np.int64)
            return [
                {"input_ids": i, "token_type_ids": s, "attention_mask": [1] * len(i), "labels": y}
                for i, s, y in zip(feats.input_ids, feats.token_type_ids, labels, strict=True)
            ]

        train, dev = rows(data.train), rows(data.evals["dev"])
        clock.seconds["featurise"] += time.perf_counter() - t
        for seed in range(args.runs):
            t = time.perf_counter()
            torch.manual_seed(seed)
            model = ElectraForSequenceClassification(
                hf_config(model_cfg, num_labels=task.num_outputs, problem_type=None)
            )
            clock.seconds["build"] += time.perf_counter() - t
            training = TrainingArguments(
                output_dir=str(out / task.name / f"run_{seed}"),
                per_device_train_batch_size=cfg.batch_size,
                per_device_eval_batch_size=cfg.eval_batch_size,
                num_train_epochs=cfg.epochs,
                learning_rate=cfg.learning_rate,
                warmup_steps=cfg.warmup_proportion,  # a float below 1: the fraction of the steps
                weight_decay=0.0,
                max_grad_norm=1.0,
                adam_epsilon=1e-6,
                seed=seed,
                save_strategy="no",
                eval_strategy="no",
                logging_strategy="no",
                report_to=[],
                disable_tqdm=True,
                use_cpu=True,
                dataloader_num_workers=0,
            )
            trainer = Trainer(model=model, args=training, train_dataset=train, data_collator=collator)
            t = time.perf_counter()
            trainer.train()
            clock.seconds["train"] += time.perf_counter() - t
            t = time.perf_counter()
            pred = trainer.predict(dev)
            outputs = pred.predictions.reshape(len(dev), -1)
            scores[f"{task.name}/run_{seed}"] = compute_metrics(task, outputs, data.evals["dev"].labels)
            clock.seconds["dev"] += time.perf_counter() - t
    return scores


def worker(args) -> None:
    clock = Clock()
    clock.seconds["start"] = STARTED - args.launched
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scores = (trainer_worker if args.worker == "trainer" else electra_worker)(args, Path(tmp) / "sweep", clock)
    total = time.perf_counter() - begun
    clock.seconds["other"] = total - sum(v for k, v in clock.seconds.items() if k != "start")
    wall = time.time() - args.launched  # from the launch to the end of the work (side by side, the driver waits)
    print(json.dumps({"wall": wall, "phases": dict(clock.seconds), "scores": scores}))


# ---------------------------------------------------------------------------------------------- driver


def launch(name: str, src: str | None, args, passthrough: list[str]) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if src is not None:
        env["PYTHONPATH"] = str(Path(src).resolve())
    kind = "trainer" if name == "trainer" else "electra"
    t = time.time()
    cmd = [sys.executable, __file__, "--worker", kind, "--launched", repr(t), *passthrough]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True), t


def finish(proc: subprocess.Popen, launched: float) -> dict:
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"a variant failed (exit {proc.returncode})")
    return json.loads(stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    protocol_args(parser)
    parser.add_argument("--worker", choices=("electra", "trainer"), help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=SRC[@JSON]",
        help="a source tree to time, with finetuning options of its own as JSON after @",
    )
    parser.add_argument("--trainer", action="store_true", help="also time the transformers.Trainer script")
    parser.add_argument("--side-by-side", action="store_true")
    parser.add_argument("--json", help="write the results here too")
    args, _ = parser.parse_known_args()
    if args.worker:
        worker(args)
        return
    argv = sys.argv[1:]
    passthrough = []
    skip = {"--variant", "--json"}
    i = 0
    while i < len(argv):
        if argv[i] in skip:
            i += 2
        elif argv[i] in ("--trainer", "--side-by-side"):
            i += 1
        else:
            passthrough.append(argv[i])
            i += 1
    variants = []
    for spec in args.variant:
        name, src = spec.split("=", 1)
        src, _, extra = src.partition("@")
        variants.append((name, src, ["--extra", extra] if extra else []))
    variants += [("trainer", None, [])] if args.trainer else []
    results = {}
    if args.side_by_side:
        procs = {name: launch(name, src, args, passthrough + extra) for name, src, extra in variants}
        results = {name: finish(*p) for name, p in procs.items()}
    else:
        for name, src, extra in variants:
            results[name] = finish(*launch(name, src, args, passthrough + extra))
    import torch

    header = f"{'phase (s)':<12}" + "".join(f"{name:>12}" for name in results)
    print(header)
    for phase in PHASES:
        print(f"{phase:<12}" + "".join(f"{r['phases'].get(phase, 0.0):>12.1f}" for r in results.values()))
    print(f"{'wall':<12}" + "".join(f"{r['wall']:>12.1f}" for r in results.values()))
    first = next(iter(results.values()))["wall"]
    print(f"{'ratio':<12}" + "".join(f"{r['wall'] / first:>12.3f}" for r in results.values()))
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "command": " ".join([Path(sys.argv[0]).name, *argv]),
        "results": results,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
