"""Issue #49's GPU checks in one call, most important first; each result is one JSON line appended to
OUT/gpu.jsonl as soon as it exists, so a cut call still returns what it had.

    python benchmarks/gpu_driver.py --out "$OUT" --data DATA_DIR [--budget 488]   # on one H100/H200
    python benchmarks/gpu_driver.py --out /tmp/gpu_dry --dry-run                  # on the CPU, tiny sizes, seconds

Stages, each with its own wall-clock budget (a stage is stopped at its budget and the next one runs):
  a. `tiny` ELECTRA (its own recipe) and the masked LM (its best recipe) at equal FLOPs, side by side for the same
     wall time, packed (final checkpoint, config, metrics, vocab) into OUT/budget_runs.tgz for CPU finetuning.
  b. ELECTRA-Small throughput at 128 x 128 bf16: the current best settings and every speed variant, peak memory.
  c. Base (length 512) and Large: sequences/s, TFLOP/s (paper count), peak memory, largest micro-batch that fits.
  d. Finetuning examples/s at 32 x 128 for Small and Base: ours against transformers.ElectraForSequenceClassification;
     then Small in P = 1, 2, 4 processes at once on the one device (a sweep's seeds side by side, `--shard K/N`), and
     from the best aggregate rate the GPU-hours of a 10-seed GLUE sweep of Small (an extrapolation by example counts).
  e. torchrun --nproc-per-node 2 (gloo) on the one device ends with the same weights as one process.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import queue
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
MLM_RECIPE = [
    "--objective",
    "mlm",
    "--output-bias-init",
    "prior",
    "--freeze-word-embeddings",
    "false",
    "--adam-epsilon",
    "1e-2",
    "--learning-rate",
    "1e-3",
    "--remove-top-word-direction",
    "true",
]
ELECTRA_RECIPE = ["--learning-rate", "5e-4", "--adam-epsilon", "1e-6"]
# a model small enough for the CPU dry run (the data's vocabulary is set from meta.json)
DRY_SHAPE = ["--hidden-size", "32", "--embedding-size", "16", "--num-hidden-layers", "2", "--intermediate-size", "64"]
# ELECTRA-Small speed variants: (name, extra bench options); the first is the current best
SMALL_VARIANTS = [
    ("best: compile reduce-overhead", ["--compile", "reduce-overhead"]),
    # issue #49 item 2 (electra.fused): each gives the same losses as the best settings (tests/test_speed_variants.py)
    ("reduce-overhead + fused generator head", ["--compile", "reduce-overhead", "--fused-generator-head"]),
    ("reduce-overhead + graph optimizer", ["--compile", "reduce-overhead", "--graph-optimizer"]),
    ("reduce-overhead + both", ["--compile", "reduce-overhead", "--fused-generator-head", "--graph-optimizer"]),
    ("eager", []),
    ("compile default", ["--compile"]),
    ("compile reduce-overhead, parts", ["--compile", "reduce-overhead", "--compile-scope", "parts"]),
    ("compile reduce-overhead, batch 256", ["--compile", "reduce-overhead", "--batch", "256"]),
    # last: autotuning inductor's GEMMs adds minutes to the compile (time it alone: --stages b --budget 300)
    ("reduce-overhead + gemm epilogues", ["--compile", "reduce-overhead", "--gemm-epilogues"]),
]


class Log:
    def __init__(self, out: Path):
        self.path = out / "gpu.jsonl"
        self.t0 = time.monotonic()

    def __call__(self, stage: str, **fields) -> None:
        row = {"stage": stage, "t": round(time.monotonic() - self.t0, 1), **fields}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}


def run(cmd: list[str], timeout: float, log_file: Path | None = None) -> tuple[int, str]:
    """(exit code, stdout); 124 when cut at `timeout`. stderr goes to `log_file` (or is kept in the message)."""
    try:
        r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        return 124, ""
    if log_file is not None:
        with log_file.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n{r.stderr[-4000:]}\n")
    return r.returncode, r.stdout


def bench(args: list[str], timeout: float, errors: Path) -> dict:
    rc, out = run([PY, "-m", "electra", "bench", "--json", *args], timeout, errors)
    if rc != 0 or not out.strip():
        return {"error": "timeout" if rc == 124 else f"exit {rc}"}
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ stages


def stage_a(o: argparse.Namespace, log: Log, budget: float) -> None:
    """ELECTRA vs masked LM at equal FLOPs, side by side for the same wall time; packed for CPU finetuning."""
    from electra.config import preset
    from electra.flops import train_flops_per_sequence

    start = time.monotonic()
    vocab = json.loads((o.data / "meta.json").read_text())["vocab_size"]
    ratio = train_flops_per_sequence(preset("tiny", vocab_size=vocab, objective="electra")) / (
        train_flops_per_sequence(preset("tiny", vocab_size=vocab, objective="mlm"))
    )
    batch, seq = (8, 32) if o.dry_run else (128, 128)
    shape = ["--preset", "tiny", "--vocab-size", str(vocab), *(DRY_SHAPE if o.dry_run else [])]
    # calibration: both objectives' throughput, measured side by side as they will train
    calib = []
    for extra in ([], ["--objective", "mlm"]):
        cmd = [PY, "-m", "electra", "bench", "--json", *shape, "--batch", str(batch), "--seq-len", str(seq)]
        cmd += ["--steps", "3" if o.dry_run else "150", "--warmup", "1" if o.dry_run else "20", *extra]
        cmd += ["--precision", o.precision, "--device", o.device]
        calib.append(subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    e_rate, m_rate = (json.loads(p.communicate()[0].strip().splitlines()[-1])["seqs_per_s"] for p in calib)
    train_s = (budget - (time.monotonic() - start)) * 0.8 - 20  # start-up, evaluation, packing
    train_s = 1.0 if o.dry_run else max(train_s, 1.0)
    e_steps = max(4, int(min(e_rate * train_s, m_rate * train_s / ratio) / batch))
    m_steps = round(ratio * e_steps)
    log(
        "a.plan",
        vocab=vocab,
        flops_ratio=round(ratio, 4),
        electra_seqs_per_s=e_rate,
        mlm_seqs_per_s=m_rate,
        train_s=round(train_s),
        electra_steps=e_steps,
        mlm_steps=m_steps,
    )
    runs = o.work / "budget_runs"
    procs = {}
    for name, steps, recipe in (("electra", e_steps, ELECTRA_RECIPE), ("mlm", m_steps, MLM_RECIPE)):
        cmd = [PY, "-m", "electra", "pretrain", *shape, "--data", str(o.data), "--batch-size", str(batch)]
        cmd += ["--max-length", str(seq), "--max-steps", str(steps), "--warmup-steps", str(max(1, steps // 10))]
        cmd += ["--eval-every", str(max(1, steps // 4)), "--save-every", str(max(1, steps // 4))]
        cmd += ["--log-every", str(max(1, steps // 20)), "--precision", o.precision, "--no-progress"]
        cmd += ["--device", o.device, "--seed", "0", *recipe, "--out", str(runs / name)]
        procs[name] = (
            subprocess.Popen(cmd, env=env(), stdout=(o.work / f"{name}.log").open("w"), stderr=subprocess.STDOUT),
            time.monotonic(),
        )
    left = budget - (time.monotonic() - start) - 10
    for name, (p, t0) in procs.items():
        try:
            rc = p.wait(timeout=max(1, left - (time.monotonic() - t0) + (t0 - start)))
        except subprocess.TimeoutExpired:
            p.kill()
            rc = 124
        cfg = runs / name / "config.json"
        info = json.loads(cfg.read_text()) if cfg.exists() else {}
        rows = (
            [json.loads(x) for x in (runs / name / "metrics.jsonl").read_text().splitlines()]
            if (runs / name / "metrics.jsonl").exists()
            else []
        )
        last = next((r for r in reversed(rows) if "loss" in r), {})
        log(
            "a.run",
            name=name,
            exit=rc,
            wall_s=round(time.monotonic() - t0, 1),
            finished=info.get("finished", False),
            last=last,
        )
    pack = o.out / "budget_runs.tgz"
    with tarfile.open(pack, "w:gz") as tar:
        for name in procs:
            run_dir = runs / name
            for rel in ("config.json", "metrics.jsonl", "checkpoints/index.json"):
                if (run_dir / rel).exists():
                    tar.add(run_dir / rel, f"{name}/{rel}")
            latest = run_dir / "checkpoints" / "latest"
            if latest.exists():
                tar.add(
                    latest.resolve(),
                    f"{name}/checkpoints/latest",
                    filter=lambda t: None if t.name.endswith(("optimizer.pt", "rng_state.pt")) else t,
                )
            tar.add(o.work / f"{name}.log", f"{name}.log")
        for rel in ("vocab.txt", "meta.json"):
            if (o.data / rel).exists():
                tar.add(o.data / rel, f"data/{rel}")
    log("a.pack", path=pack.name, mb=round(pack.stat().st_size / 2**20, 2))


def stage_b(o: argparse.Namespace, log: Log, budget: float) -> None:
    """ELECTRA-Small at 128 x 128 bf16: the best settings, then every speed variant."""
    start = time.monotonic()
    base = ["--preset", "small", "--batch", "128", "--seq-len", "128", "--steps", "60", "--precision", o.precision]
    if o.dry_run:
        base = [
            "--preset",
            "small",
            *DRY_SHAPE,
            "--vocab-size",
            "200",
            "--batch",
            "4",
            "--seq-len",
            "32",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--precision",
            o.precision,
        ]
    for name, extra in SMALL_VARIANTS:
        left = budget - (time.monotonic() - start)
        if left < 15 and not o.dry_run:
            log("b.small", variant=name, error="stage budget spent")
            continue
        if o.dry_run:  # (no compiling on the CPU; tests/test_speed_variants.py covers the compiled variants)
            dropped = (
                "--compile",
                "reduce-overhead",
                "--compile-scope",
                "parts",
                "--graph-optimizer",
                "--gemm-epilogues",
            )
            extra = [x for x in extra if x not in dropped]
            extra = ["--batch", "8"] if "--batch" in extra else extra
        log("b.small", variant=name, **bench([*base, *extra, "--device", o.device], left, o.work / "errors.txt"))


def stage_c(o: argparse.Namespace, log: Log, budget: float) -> None:
    """Base (length 512) and Large: throughput, TFLOP/s, peak memory; then the largest micro-batch that fits."""
    start = time.monotonic()
    shapes = {"base": ["--seq-len", "512"], "large": ["--seq-len", "512"]}
    for name, extra in shapes.items():
        base = ["--preset", name, *extra, "--precision", o.precision, "--device", o.device]
        base += ["--steps", "5", "--warmup", "2"]
        if o.dry_run:
            base = [
                "--preset",
                name,
                *DRY_SHAPE,
                "--vocab-size",
                "200",
                "--seq-len",
                "32",
                "--steps",
                "1",
                "--warmup",
                "1",
                "--precision",
                o.precision,
                "--device",
                o.device,
            ]
        batch = 2 if o.dry_run else 32
        left = budget / 2 - (time.monotonic() - start) + (budget / 2 if name == "large" else 0)
        r = bench([*base, "--batch", str(batch)], left, o.work / "errors.txt")
        log("c.throughput", **{**r, "preset": name, "batch": batch})
        # largest micro-batch: double until it fails (out of memory) or the stage's share is spent
        fits, b = None, batch
        limit = 8 if o.dry_run else 4096
        while b <= limit and time.monotonic() - start < (budget / 2 if name == "base" else budget) - 10:
            left = (budget / 2 if name == "base" else budget) - (time.monotonic() - start)
            r = bench([*base, "--batch", str(b), "--steps", "2", "--warmup", "1"], left, o.work / "errors.txt")
            if "error" in r:
                break
            fits, b = r, b * 2
        log(
            "c.max_micro_batch",
            preset=name,
            largest_fitting=fits and fits.get("batch", b // 2),
            peak_mem_mb=fits and fits.get("peak_mem_mb"),
        )


def _finetune_step(model, opt, batch, bf16: bool) -> None:
    """One finetuning step (forward, cross-entropy on the logits, backward, AdamW)."""
    import torch

    ids, mask, labels = batch
    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(ids, mask)
        logits = out if isinstance(out, torch.Tensor) else out.logits
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def stage_d(o: argparse.Namespace, log: Log, budget: float) -> None:
    """Finetuning examples/s at 32 x 128: our SequenceClassifier against transformers'
    ElectraForSequenceClassification."""
    import torch

    from electra.config import preset
    from electra.finetune.encoder import SequenceClassifier
    from electra.hf import hf_config, quiet_transformers

    with quiet_transformers():
        from transformers import ElectraForSequenceClassification

    start = time.monotonic()
    dev = torch.device(o.device if o.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    batch, seq, steps = (4, 32, 2) if o.dry_run else (32, 128, 30)
    over = (
        {
            "hidden_size": 32,
            "embedding_size": 16,
            "num_hidden_layers": 2,
            "intermediate_size": 64,
            "vocab_size": 200,
        }
        if o.dry_run
        else {}
    )
    for name in ("small", "base"):
        cfg = preset(name, **over).model
        for impl in ("electra", "transformers"):
            if time.monotonic() - start > budget:
                log("d.finetune", preset=name, impl=impl, error="stage budget spent")
                continue
            torch.manual_seed(0)
            if impl == "electra":
                model = SequenceClassifier(cfg, 2)
            else:
                with quiet_transformers():
                    model = ElectraForSequenceClassification(hf_config(cfg, num_labels=2))
            model.to(dev).train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev.type == "cuda")
            ids = torch.randint(5, cfg.vocab_size, (batch, seq), device=dev)
            mask = torch.ones_like(ids)
            labels = torch.randint(0, 2, (batch,), device=dev)

            step = functools.partial(_finetune_step, model, opt, (ids, mask, labels), o.precision == "bf16")

            for _ in range(3):
                step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            mem = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
            log(
                "d.finetune",
                preset=name,
                impl=impl,
                batch=batch,
                seq_len=seq,
                examples_per_s=round(batch * steps / dt, 1),
                peak_mem_mb=mem and round(mem),
            )
    model = opt = step = None  # (the last model's memory back to the device for the processes below)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    # then Small in several processes at once (a sweep's seeds side by side), and the 10-seed GLUE estimate
    best = _concurrent(o, log, budget - (time.monotonic() - start), over, batch, seq)
    _glue10_estimate(log, best, batch, seq)


# GLUE train and dev set sizes (the GLUE-8 tasks and WNLI; MNLI dev: matched + mismatched)
GLUE_TRAIN = {
    "cola": 8551,
    "sst2": 67349,
    "mrpc": 3668,
    "stsb": 5749,
    "qqp": 363846,
    "mnli": 392702,
    "qnli": 104743,
    "rte": 2490,
    "wnli": 635,
}
GLUE_DEV = {
    "cola": 1043,
    "sst2": 872,
    "mrpc": 408,
    "stsb": 1500,
    "qqp": 40430,
    "mnli": 9815 + 9832,
    "qnli": 5463,
    "rte": 277,
    "wnli": 71,
}


def glue_example_passes(seeds: int = 10, batch: int = 1, eval_weight: float = 1 / 3) -> dict[str, float]:
    """Training example passes of a `seeds`-seed GLUE sweep with the official recipe (epochs by task: 3, 10 for RTE
    and STS-B; MRPC and STS-B train doubled by the (b, a) copies), each epoch padded to whole batches of `batch` rows
    (electra.finetune.recipe.train_steps), plus one evaluation of the dev splits per run, an evaluated example
    counted as `eval_weight` of a training pass (forward only). Returns the count per task and "total"."""
    from electra.finetune.tasks import TASKS

    out: dict[str, float] = {}
    for name, n in GLUE_TRAIN.items():
        task = TASKS[name]
        rows = n * (2 if task.double_unordered else 1)
        out[name] = seeds * (math.ceil(rows / batch) * batch * task.epochs + eval_weight * GLUE_DEV[name])
    out["total"] = sum(out.values())
    return out


def _glue10_estimate(log: Log, best: dict | None, batch: int, seq: int) -> None:
    """The 10-seed GLUE sweep of Small at the best aggregate rate of the processes side by side, in GPU-hours."""
    passes = glue_example_passes(seeds=10, batch=32)  # the recipe's batch, whatever the measurement's
    if not best:
        log("d.glue10_estimate", example_passes=round(passes["total"]), error="no concurrent rate measured")
        return
    hours = passes["total"] / best["examples_per_s"] / 3600
    log(
        "d.glue10_estimate",
        preset="small",
        seeds=10,
        example_passes=round(passes["total"]),
        per_task={k: round(v) for k, v in passes.items() if k != "total"},
        processes=best["processes"],
        examples_per_s=best["examples_per_s"],
        gpu_hours=round(hours, 3),
        extrapolation=(
            f"by example counts (epochs padded to batches of 32) at the rate measured at batch {batch} x length "
            f"{seq}, the best aggregate of the processes side by side (fixed steps on random tokens); GLUE's real "
            "lengths are shorter, so an upper bound on "
            "the compute for these settings; an evaluated example counts 1/3 of a training pass; not counted: "
            "data loading, start-up, test-set predictions of the best-so-far runs"
        ),
    )


def _concurrent_child(rank, over, batch, seq, steps, bf16, device, phases, barrier, results) -> None:
    """One of P processes: Small's finetuning step at `batch` x `seq`; in each phase p < P waits at the barrier,
    the first p processes time `steps` steps, and each reports (p, rank, start, end, peak memory)."""
    try:
        import torch

        from electra.config import preset
        from electra.finetune.encoder import SequenceClassifier

        dev = torch.device(device)
        cfg = preset("small", **over).model
        torch.manual_seed(rank)
        model = SequenceClassifier(cfg, 2).to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev.type == "cuda")
        ids = torch.randint(5, cfg.vocab_size, (batch, seq), device=dev)
        data = (ids, torch.ones_like(ids), torch.randint(0, 2, (batch,), device=dev))
        for _ in range(3):
            _finetune_step(model, opt, data, bf16)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        sync()
    except Exception as e:  # noqa: BLE001 -- reported to the parent, which logs it
        results.put(("error", rank, repr(e)[:300]))
        barrier.abort()
        return
    for p in phases:
        try:
            barrier.wait()  # all ready: the phase starts
        except threading.BrokenBarrierError:
            return
        if rank < p:
            try:
                t0 = time.monotonic()
                for _ in range(steps):
                    _finetune_step(model, opt, data, bf16)
                sync()
                t1 = time.monotonic()
            except Exception as e:  # noqa: BLE001 -- (out of memory, say) reported to the parent
                results.put(("error", rank, repr(e)[:300]))
                barrier.abort()
                return
            mem = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
            results.put((p, rank, t0, t1, mem))
        try:
            barrier.wait()  # the phase's processes are done
        except threading.BrokenBarrierError:
            return


def _concurrent(o: argparse.Namespace, log: Log, budget: float, over: dict, batch: int, seq: int) -> dict | None:
    """Small's finetuning step in P processes at once on the one device (P = 1, 2, 4; dry run 1, 2), the same fixed
    number of steps each after warm-up. The processes start once (spawn) and are reused across P, so start-up is
    paid once. Logs d.concurrent per P: the aggregate examples/s (all processes' examples over the span from the
    first start to the last end) and each process's own rate. Returns the best P's record (None if none)."""
    import multiprocessing as mp

    start = time.monotonic()
    phases = (1, 2) if o.dry_run else (1, 2, 4)
    steps = 3 if o.dry_run else 60
    if budget < (1 if o.dry_run else 10):
        for p in phases:
            log("d.concurrent", preset="small", processes=p, error="stage budget spent")
        return None
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(max(phases) + 1), ctx.Queue()
    bf16 = o.precision == "bf16"
    procs = [
        ctx.Process(
            target=_concurrent_child,
            args=(r, over, batch, seq, steps, bf16, o.device, phases, barrier, results),
            daemon=True,
        )
        for r in range(max(phases))
    ]
    for proc in procs:
        proc.start()
    best = None
    try:
        for i, p in enumerate(phases):
            left = budget - (time.monotonic() - start)
            if left < 1:
                for q in phases[i:]:
                    log("d.concurrent", preset="small", processes=q, error="stage budget spent")
                break
            try:
                barrier.wait(timeout=left)  # (the first phase also waits for the processes' start-up)
                barrier.wait(timeout=max(1.0, budget - (time.monotonic() - start)))
            except threading.BrokenBarrierError:
                errs = []
                try:
                    while True:
                        errs.append(results.get(timeout=2))
                except queue.Empty:
                    pass
                spent = "stage budget spent" if time.monotonic() - start >= budget else "a process failed"
                for q in phases[i:]:
                    log("d.concurrent", preset="small", processes=q, error=spent, detail=str(errs)[:500])
                break
            rows = [results.get(timeout=30) for _ in range(p)]
            span = max(r[3] for r in rows) - min(r[2] for r in rows)
            own = [round(batch * steps / (r[3] - r[2]), 1) for r in sorted(rows, key=lambda r: r[1])]
            mems = [r[4] for r in rows if r[4] is not None]
            rec = {
                "processes": p,
                "examples_per_s": round(p * batch * steps / span, 1),
                "per_process_examples_per_s": own,
            }
            log(
                "d.concurrent",
                preset="small",
                batch=batch,
                seq_len=seq,
                steps=steps,
                **rec,
                peak_mem_mb_per_process=round(max(mems)) if mems else None,
            )
            if best is None or rec["examples_per_s"] > best["examples_per_s"]:
                best = rec
    finally:
        barrier.abort()  # processes still waiting for a phase return
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    return best


def stage_e(o: argparse.Namespace, log: Log, budget: float) -> None:
    """torchrun --nproc-per-node 2 (gloo, both on the one device) == one process, after a few steps."""
    import torch
    from safetensors.torch import load_file

    vocab = json.loads((o.data / "meta.json").read_text())["vocab_size"]
    common = ["pretrain", "--preset", "tiny", "--vocab-size", str(vocab), *DRY_SHAPE, "--data", str(o.data)]
    common += ["--max-length", "32", "--batch-size", "8", "--micro-batch-size", "2", "--max-steps", "5"]
    common += ["--warmup-steps", "3", "--log-every", "1", "--eval-every", "0", "--no-progress", "--precision", "fp32"]
    one, two = o.work / "ddp_one", o.work / "ddp_two"
    start = time.monotonic()
    rc1, _ = run([PY, "-m", "electra", *common, "--out", str(one)], budget / 2, o.work / "errors.txt")
    left = budget - (time.monotonic() - start)
    rc2, out = run(
        [
            PY,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "electra",
            *common,
            "--out",
            str(two),
        ],
        left,
        o.work / "errors.txt",
    )
    try:
        a = load_file(one / "checkpoints" / "latest" / "model.safetensors")
        b = load_file(two / "checkpoints" / "latest" / "model.safetensors")
        diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        same = a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    except (FileNotFoundError, KeyError, RuntimeError) as e:
        diff, same = None, False
        log("e.ddp", error=repr(e)[:300])
    log(
        "e.ddp",
        one_process_exit=rc1,
        torchrun_exit=rc2,
        two_processes="2 process(es)" in out,
        max_abs_diff=diff,
        same_weights=same,
    )


STAGES = {"a": stage_a, "b": stage_b, "c": stage_c, "d": stage_d, "e": stage_e}
# seconds of each stage in a full call (sum 488 s, about 8 minutes with start-up); scaled by --budget
SHARES = {"a": 350, "b": 65, "c": 30, "d": 30, "e": 13}  # a: >= 4 training minutes per model at --budget 488


def prepare_dry_data(work: Path) -> Path:
    """A tiny dataset from the built-in corpus with a small vocabulary (the dry run's stand-in for DATA)."""
    for cmd in (
        ["vocab", "--corpus", "builtin", "--size", "200", "--out", str(work / "vocab")],
        [
            "prepare",
            "--corpus",
            "builtin",
            "--vocab",
            str(work / "vocab"),
            "--max-length",
            "32",
            "--quiet",
            "--out",
            str(work / "data"),
        ],
    ):
        subprocess.run([PY, "-m", "electra", *cmd], env=env(), check=True, capture_output=True)
    return work / "data"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_results")))
    p.add_argument("--data", type=Path, help="prepared pretraining data (`electra prepare`), e.g. .gpu/prose128_v8k")
    p.add_argument("--budget", type=float, default=488.0, help="seconds for all stages (default 488)")
    p.add_argument("--stages", default="abcde")
    p.add_argument("--work", type=Path, help="run directories (default: a temporary directory)")
    p.add_argument("--dry-run", action="store_true", help="the whole script on the CPU with tiny sizes, in seconds")
    o = p.parse_args(argv)
    o.out.mkdir(parents=True, exist_ok=True)
    o.work = o.work or Path(tempfile.mkdtemp(prefix="gpu_driver_"))
    o.work.mkdir(parents=True, exist_ok=True)
    o.device = "cpu" if o.dry_run else "cuda"
    o.precision = "fp32" if o.dry_run else "bf16"
    log = Log(o.out)
    import torch

    log(
        "start",
        dry_run=o.dry_run,
        torch=torch.__version__,
        device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    )
    if o.data is None:
        if not o.dry_run:
            p.error("--data is required (except with --dry-run)")
        o.data = prepare_dry_data(o.work)
    total = sum(SHARES[s] for s in o.stages)
    for s in o.stages:
        budget = SHARES[s] * o.budget / total if not o.dry_run else 60.0
        t0 = time.monotonic()
        try:
            STAGES[s](o, log, budget)
        except Exception as e:  # noqa: BLE001 -- a failed stage is a result; the next stage still runs
            log(f"{s}.error", error=repr(e)[:500])
        log(f"{s}.done", wall_s=round(time.monotonic() - t0, 1), budget_s=round(budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
