"""`electra bench`: what it reports, on CPU with a tiny model."""

import json

import pytest
import torch

from electra.cli import main
from electra.train.bench import device_name

TINY = [
    "bench",
    "--preset",
    "tiny",
    "--vocab-size",
    "200",
    "--hidden-size",
    "32",
    "--embedding-size",
    "16",
    "--num-hidden-layers",
    "1",
    "--intermediate-size",
    "64",
    "--batch",
    "4",
    "--seq-len",
    "16",
    "--steps",
    "2",
    "--warmup",
    "1",
    "--json",
]


def test_bench_json_reports_consistent_throughput(capsys):
    assert main(TINY) == 0
    out = capsys.readouterr().out
    assert out.endswith("}\n")  # a complete line, for shells and `jq`
    r = json.loads(out.strip().splitlines()[-1])
    assert {"tokens_per_s", "seqs_per_s", "peak_mem_mb", "flops_per_s"} <= r.keys()
    assert r["tokens_per_s"] == pytest.approx(r["seqs_per_s"] * 16)
    assert (r["batch"], r["seq_len"], r["steps"], r["device"], r["compile"]) == (4, 16, 2, "cpu", False)
    assert r["seqs_per_s"] > 0 and r["peak_mem_mb"] > 0


def test_bench_names_the_gpu(monkeypatch):
    """(the CUDA branch, which CI cannot run: it once called a function that does not exist)"""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"GPU {device}")
    assert device_name(torch.device("cuda", 0)) == "GPU cuda:0"
    assert device_name(torch.device("cpu")) == "cpu"


def test_bench_refuses_cuda_graphs_with_gradient_accumulation(capsys):
    assert main([*TINY, "--compile", "reduce-overhead", "--micro-batch-size", "2"]) == 2
    assert "--micro-batch-size 4" in capsys.readouterr().err
