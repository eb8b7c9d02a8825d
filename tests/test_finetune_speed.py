"""Finetuning work done only where it is needed: test data predicted by the run that is best on dev so far,
evaluation in length-sorted batches equal to the file-order path, featurisation once per task, and the optional
length-grouped training order."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from glue_fixtures import write_glue, write_micro_model

from electra.cli import main
from electra.config import FinetuneConfig
from electra.finetune import features as features_module
from electra.finetune import glue
from electra.finetune.encoder import load_encoder
from electra.finetune.features import collate
from electra.finetune.recipe import group_order
from electra.finetune.results import load_runs, rank
from electra.finetune.tasks import TASKS, parse_tasks

TASK_NAMES = "sst2,stsb,mnli"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ftspeed")
    write_glue(root / "glue", n_train=24, n_dev=20, n_test=9)
    write_micro_model(root)
    return root


def run_sweep(workdir: Path, out: Path, **options) -> None:
    cfg = FinetuneConfig(epochs=1, max_length=32, **options.pop("recipe", {}))
    glue.sweep(
        str(workdir / "micro"), parse_tasks(TASK_NAMES), out, workdir / "glue", runs=4, seed=0, cfg=cfg,
        device="cpu", quiet=True, **options,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sweeps(workdir) -> tuple[Path, Path]:
    best, every = workdir / "best", workdir / "all"
    run_sweep(workdir, best)
    run_sweep(workdir, every, test_predictions="all")
    return best, every


def test_test_data_is_predicted_by_the_runs_best_on_dev_so_far(sweeps):
    best, every = sweeps
    for name in TASK_NAMES.split(","):
        task = TASKS[name]
        runs = load_runs(best, task)
        assert [r["metrics"] for r in runs] == [r["metrics"] for r in load_runs(every, task)]  # dev: unchanged
        leader, expected = None, set()
        for r in runs:  # seed order, as the sweep ran them
            if leader is None or rank(r, task) > rank(leader, task):
                leader = r
                expected.add(Path(r["dir"]).name)
        kept = {Path(r["dir"]).name for r in runs if (Path(r["dir"]) / "predictions_test.npz").is_file()}
        assert kept == expected and Path(max(runs, key=lambda r: rank(r, task))["dir"]).name in kept
        for r in runs:  # the dev predictions of every run stay
            assert (Path(r["dir"]) / "predictions_dev.npz").is_file()


def test_submission_of_the_best_runs_equals_the_one_from_every_runs_test_predictions(sweeps, tmp_path):
    contents = []
    for sweep_dir in sweeps:
        path = tmp_path / f"{sweep_dir.name}.zip"
        assert main(["submit", str(sweep_dir), "--out", str(path), "--pick", "best"]) == 0
        with zipfile.ZipFile(path) as zf:
            contents.append({n: zf.read(n) for n in zf.namelist()})
    assert contents[0] == contents[1] and sorted(contents[0]) == [
        "AX.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "SST-2.tsv", "STS-B.tsv"
    ]  # fmt: skip


def test_submission_needing_other_runs_says_how_to_keep_them(sweeps, tmp_path, capsys):
    best, _ = sweeps
    assert main(["submit", str(best), "--out", str(tmp_path / "m.zip"), "--pick", "ensemble:4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "predictions_test" in err and "--test-predictions all" in err
    assert not (tmp_path / "m.zip").exists()


def file_order_outputs(model, features, cfg, pad_id) -> np.ndarray:
    """The evaluation before length sorting: batches of eval_batch_size rows in file order, under no_grad."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(features), cfg.eval_batch_size):
            b = collate(features, range(start, min(start + cfg.eval_batch_size, len(features))), pad_id)
            out.append(model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("task_name", ["sst2", "stsb", "mnli"])
def test_length_sorted_evaluation_equals_the_file_order_path(workdir, task_name):
    task = TASKS[task_name]
    encoder, model_cfg, tok = load_encoder(str(workdir / "micro"))
    cfg = FinetuneConfig(epochs=1, max_length=32, eval_batch_size=7).resolve(model_cfg, task)  # several batches
    data = glue.prepare_task(task, workdir / "glue", tok, cfg)
    model, outputs = glue.finetune_run(data, encoder, model_cfg, cfg, 0, torch.device("cpu"), tok.pad_id)
    lengths = [len(q) for q in data.evals["dev"].input_ids]
    assert lengths != sorted(lengths)  # the sorted order really differs from the file's
    for feats in [*data.evals.values(), *data.tests.values()]:
        new = glue.predict(model, feats, torch.device("cpu"), cfg, tok.pad_id)
        old = file_order_outputs(model, feats, cfg, tok.pad_id)
        np.testing.assert_allclose(new, old, rtol=1e-5, atol=1e-6)
        if not task.is_regression:
            assert (new.argmax(-1) == old.argmax(-1)).all()
    old_dev = {s: file_order_outputs(model, f, cfg, tok.pad_id) for s, f in data.evals.items()}
    expected = glue.evaluate(task, data.evals, old_dev)
    assert glue.evaluate(task, data.evals, outputs) == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_each_task_is_featurised_once_for_all_its_seeds(workdir, tmp_path, monkeypatch):
    calls = []
    real = glue.featurize
    monkeypatch.setattr(glue, "featurize", lambda task, *a: calls.append(task.name) or real(task, *a))
    glue.sweep(
        str(workdir / "micro"), parse_tasks("sst2,rte"), tmp_path / "o", workdir / "glue", runs=3, seed=0,
        cfg=FinetuneConfig(epochs=1, max_length=32), device="cpu", quiet=True,
    )  # fmt: skip
    assert sorted(calls) == ["rte"] * 3 + ["sst2"] * 3  # train, dev and test once each, not once per seed
    assert len(list((tmp_path / "o").glob("*/run_*/metrics.json"))) == 6
    assert features_module.featurize is real


def test_group_order_sorts_each_group_of_batches_longest_first():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=230).tolist()
    order = rng.permutation(230).tolist()
    grouped = group_order(order, lengths, batch_size=4, groups=10)
    assert sorted(grouped) == list(range(230))
    for s in range(0, 230, 40):
        chunk = grouped[s : s + 40]
        assert set(chunk) == set(order[s : s + 40])
        assert [lengths[i] for i in chunk] == sorted((lengths[i] for i in chunk), reverse=True)


def test_group_by_length_trains_with_less_padding_and_is_off_by_default(workdir, tmp_path, monkeypatch):
    padded = {False: [], True: []}
    real = glue.collate

    for grouped in (False, True):

        def counting(features, rows, pad_id=0, grouped=grouped):
            b = real(features, rows, pad_id)
            padded[grouped].append(int((b["attention_mask"] == 0).sum()))
            return b

        monkeypatch.setattr(glue, "collate", counting)
        cfg = FinetuneConfig(epochs=2, max_length=32, batch_size=4, group_by_length=grouped)
        glue.sweep(
            str(workdir / "micro"), parse_tasks("mrpc"), tmp_path / str(grouped), workdir / "glue", runs=1, seed=0,
            cfg=cfg, device="cpu", quiet=True,
        )  # fmt: skip
    assert sum(padded[True]) < sum(padded[False])
    assert FinetuneConfig().group_by_length is False
    config = json.loads((tmp_path / "True/mrpc/run_0/config.json").read_text())
    assert config["finetune"]["group_by_length"] is True


def test_test_predictions_option_is_checked(workdir, tmp_path):
    with pytest.raises(Exception, match="test_predictions must be best or all"):
        glue.finetune(str(workdir / "micro"), tmp_path / "x", "sst2", workdir / "glue", runs=1, test_predictions="some")
    assert not (tmp_path / "x").exists()


def test_bf16_autocasts_on_the_cpu_and_trains_close_to_fp32(workdir):
    from electra.finetune.recipe import autocast

    cpu = torch.device("cpu")
    with autocast(cpu, "bf16"):
        assert torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4)).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4)).dtype == torch.float32
    task = TASKS["sst2"]
    encoder, model_cfg, tok = load_encoder(str(workdir / "micro"))
    losses = {}
    for precision in ("fp32", "bf16"):
        cfg = FinetuneConfig(epochs=2, max_length=32, precision=precision).resolve(model_cfg, task)
        data = glue.prepare_task(task, workdir / "glue", tok, cfg)
        losses[precision] = []
        _, outputs = glue.finetune_run(
            data, encoder, model_cfg, cfg, 0, cpu, tok.pad_id, epoch_losses=losses[precision]
        )
        assert outputs["dev"].dtype == np.float32
    assert losses["bf16"] != losses["fp32"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)
