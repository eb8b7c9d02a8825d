"""A run directory written by an earlier version of the package (tests/fixtures/run_0.1.0_killed: the `tiny` shape
of tests/test_pretrain.py, 8 steps planned, killed by SIGKILL after its step-4 checkpoint; its config.json holds
fields that later versions dropped) still resumes to the run an uninterrupted start gives today, and exports."""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file
from test_pretrain import TINY, data_dir  # noqa: F401  (data_dir: the session fixture, the same examples)

from electra.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "run_0.1.0_killed"
ARGS = [*TINY, "--max-steps", "8", "--save-every", "4", "--eval-every", "4", "--probe", "none"]


def test_a_run_directory_from_an_earlier_version_resumes_exactly_and_exports(data_dir, tmp_path):  # noqa: F811
    old = tmp_path / "old"
    shutil.copytree(FIXTURE, old)
    full = tmp_path / "full"
    assert main(["pretrain", *ARGS, "--data", str(data_dir), "--out", str(full)]) == 0
    assert main(["pretrain", "--resume", "--out", str(old), "--data", str(data_dir), "--no-progress"]) == 0
    assert json.loads((old / "checkpoints" / "latest" / "trainer_state.json").read_text())["step"] == 8
    want = load_file(full / "checkpoints" / "latest" / "model.safetensors")
    got = load_file(old / "checkpoints" / "latest" / "model.safetensors")
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert main(["export", str(old), "--out", str(tmp_path / "hf")]) == 0  # verified against transformers on export
    assert (tmp_path / "hf" / "discriminator" / "config.json").is_file()
