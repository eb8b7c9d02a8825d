"""benchmarks/gpu_driver.py --dry-run: every stage of the GPU call runs on the CPU with tiny sizes and writes its
JSON line, so the prepared script cannot rot before the GPU call."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_driver_dry_run(tmp_path):
    out = tmp_path / "out"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_driver.py"),
            "--dry-run",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src")),
        check=True,
        capture_output=True,
        timeout=300,
    )
    rows = [json.loads(line) for line in (out / "gpu.jsonl").read_text().splitlines()]
    stages = [r["stage"] for r in rows]
    assert not [r for r in rows if r["stage"].endswith(".error")], rows
    for s in "abcde":
        assert f"{s}.done" in stages
    runs = [r for r in rows if r["stage"] == "a.run"]
    assert {r["name"] for r in runs} == {"electra", "mlm"} and all(r["finished"] for r in runs), runs
    plan = next(r for r in rows if r["stage"] == "a.plan")
    assert plan["mlm_steps"] == round(plan["flops_ratio"] * plan["electra_steps"])
    with tarfile.open(out / "budget_runs.tgz") as tar:
        names = tar.getnames()
    for name in ("electra", "mlm"):
        assert f"{name}/checkpoints/latest/model.safetensors" in names
    assert "data/vocab.txt" in names or "data/meta.json" in names
    small = [r for r in rows if r["stage"] == "b.small"]
    assert len(small) == 9 and all("seqs_per_s" in r for r in small), small
    assert {r["preset"] for r in rows if r["stage"] == "c.throughput" and "seqs_per_s" in r} == {"base", "large"}
    assert all(r["largest_fitting"] for r in rows if r["stage"] == "c.max_micro_batch")
    fine = [r for r in rows if r["stage"] == "d.finetune"]
    assert len(fine) == 4 and all(r["examples_per_s"] > 0 for r in fine)
    conc = [r for r in rows if r["stage"] == "d.concurrent"]
    assert [r["processes"] for r in conc] == [1, 2] and all(r["examples_per_s"] > 0 for r in conc), conc
    assert all(len(r["per_process_examples_per_s"]) == r["processes"] for r in conc), conc
    est = next(r for r in rows if r["stage"] == "d.glue10_estimate")
    assert est["gpu_hours"] > 0 and est["example_passes"] > 29_986_030 and "extrapolation" in est, est
    ddp = next(r for r in rows if r["stage"] == "e.ddp")
    assert ddp["same_weights"] and ddp["two_processes"], ddp
