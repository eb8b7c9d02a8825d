import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from glue_fixtures import MICRO, VOCAB, write_glue, write_micro_model, write_vocab

from electra import init, io
from electra.cli import main
from electra.config import FinetuneConfig, ModelConfig
from electra.errors import ConfigError, ElectraError
from electra.finetune import glue as finetune
from electra.finetune.encoder import load_encoder
from electra.finetune.features import load_split
from electra.finetune.glue import sweep
from electra.finetune.metrics import chance_auc_band, compute_metrics, ranking_auc
from electra.finetune.recipe import train_steps
from electra.finetune.results import load_predictions
from electra.finetune.tasks import TASKS, parse_tasks
from electra.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ft")
    write_glue(root / "glue", n_train=24, n_dev=10, n_test=6)
    write_micro_model(root)
    return root


@pytest.fixture(scope="module")
def swept(workdir) -> Path:
    out = workdir / "sweep"
    cfg = FinetuneConfig(epochs=1, max_length=32)
    sweep(
        str(workdir / "micro"),
        parse_tasks("sst2,stsb,mnli"),
        out,
        workdir / "glue",
        runs=2,
        seed=0,
        cfg=cfg,
        device="cpu",
        quiet=True,
        test_predictions="all",  # every run's, for the ensemble submission below
    )
    return out


def test_sweep_writes_every_run_and_consistent_metrics(swept, workdir):
    for task, splits in (
        ("sst2", ["dev", "test"]),
        ("stsb", ["dev", "test"]),
        ("mnli", ["dev", "dev_mm", "test", "test_mm", "ax"]),
    ):
        for seed in (0, 1):
            d = swept / task / f"run_{seed}"
            record = json.loads((d / "metrics.json").read_text())
            config = json.loads((d / "config.json").read_text())
            assert record["seed"] == seed and config["finetune"]["epochs"] == 1
            assert config["finetune"]["learning_rate"] == 3e-4 and config["finetune"]["layerwise_lr_decay"] == 0.8
            assert sorted(p.name for p in d.glob("predictions_*.npz")) == sorted(f"predictions_{s}.npz" for s in splits)
            # metrics.json agrees with the stored dev outputs and the gold labels read back from the files
            t = TASKS[task]
            dev = load_predictions(d / "predictions_dev.npz")
            gold = load_split(t, "dev", workdir / "glue").examples
            labels = np.array([e.label / 5 if t.is_regression else e.label for e in gold])
            recomputed = compute_metrics(t, dev["outputs"], labels)
            assert {k: record["metrics"][k] for k in recomputed} == pytest.approx(recomputed)
            if task == "sst2":  # two classes: how well the dev examples are ordered, and the chance band
                assert record["dev_auc"] == pytest.approx(ranking_auc(t, dev["outputs"], labels))
                assert record["dev_auc_chance_band"] == pytest.approx(chance_auc_band(labels))
            else:
                assert record["dev_auc"] is None and record["dev_auc_chance_band"] is None
    stsb_cfg = json.loads((swept / "stsb/run_0/config.json").read_text())
    assert stsb_cfg["n_train"] == 48  # double_unordered: 24 examples and their swapped copies
    results = json.loads((swept / "results.json").read_text())
    assert results["average"]["label"] == "GLUE-3 (no CoLA, MRPC, QQP, QNLI, RTE)"
    assert results["tasks"]["mnli"]["metrics"]["acc_mm"]["n"] == 2


def test_resume_equals_uninterrupted(swept, workdir):
    before = json.loads((swept / "sst2/run_1/metrics.json").read_text())
    kept = (swept / "sst2/run_0/metrics.json").stat().st_mtime_ns
    (swept / "sst2/run_1/metrics.json").unlink()  # as if interrupted before run_1 finished
    sweep(
        str(workdir / "micro"),
        parse_tasks("sst2,stsb,mnli"),
        swept,
        workdir / "glue",
        runs=2,
        seed=0,
        cfg=FinetuneConfig(epochs=1, max_length=32),
        device="cpu",
        quiet=True,
        test_predictions="all",
    )
    after = json.loads((swept / "sst2/run_1/metrics.json").read_text())
    assert after == before
    assert (swept / "sst2/run_0/metrics.json").stat().st_mtime_ns == kept  # complete runs are not redone


def test_submission_zip(swept, workdir, tmp_path):
    zip_path = tmp_path / "glue_submission.zip"
    assert main(["submit", str(swept), "--out", str(zip_path), "--pick", "ensemble:2"]) == 0
    with zipfile.ZipFile(zip_path) as zf:
        assert sorted(zf.namelist()) == ["AX.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "SST-2.tsv", "STS-B.tsv"]
        tables = {n: [line.split("\t") for line in zf.read(n).decode().splitlines()] for n in zf.namelist()}
    rows = {"SST-2.tsv": 6, "STS-B.tsv": 6, "MNLI-m.tsv": 6, "MNLI-mm.tsv": 7, "AX.tsv": 8}
    for name, table in tables.items():
        assert table[0] == ["index", "prediction"]
        assert len(table) - 1 == rows[name]
        assert [r[0] for r in table[1:]] == [str(i) for i in range(rows[name])]
    assert {r[1] for r in tables["SST-2.tsv"][1:]} <= {"0", "1"}
    assert {r[1] for r in tables["MNLI-m.tsv"][1:] + tables["AX.tsv"][1:]} <= {"entailment", "neutral", "contradiction"}
    assert all(0.0 <= float(r[1]) <= 5.0 for r in tables["STS-B.tsv"][1:])


def test_first_step_has_zero_learning_rate(workdir):
    """With T = 1 step the only update runs at lr 0 (official schedule), so the model does not move."""
    task = TASKS["sst2"]
    tok = load_tokenizer(workdir / "micro")
    encoder, cfg, _ = load_encoder(str(workdir / "micro"))
    ft = FinetuneConfig(epochs=1, batch_size=64, max_length=32, head_dropout=0.0).resolve(cfg, task)
    data = finetune.prepare_task(task, workdir / "glue", tok, ft)
    assert train_steps(len(data.train), ft) == 1
    model, outputs = finetune.finetune_run(data, encoder, cfg, ft, 3, torch.device("cpu"), tok.pad_id)
    fresh = finetune.build_model(encoder, cfg, 2, 0.0, init_seed=3)
    for (name, p), q in zip(model.named_parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=name)


def test_finetuning_learns_a_separable_task(tmp_path):
    """Random-init micro model on SST-2-format data whose label is the word good/bad: dev accuracy near 100."""
    write_glue(tmp_path / "glue", n_train=320, n_dev=64, n_test=4, seed=1)
    tok = load_tokenizer(write_vocab(tmp_path / "vocab.txt"))
    cfg = ModelConfig(**{**MICRO, "num_hidden_layers": 1})
    ft = FinetuneConfig(epochs=4, learning_rate=2e-3, layerwise_lr_decay=1.0, max_length=16).resolve(cfg, TASKS["sst2"])
    data = finetune.prepare_task(TASKS["sst2"], tmp_path / "glue", tok, ft)
    epoch_losses: list[float] = []
    _, outputs = finetune.finetune_run(
        data, None, cfg, ft, 0, torch.device("cpu"), tok.pad_id, epoch_losses=epoch_losses
    )
    assert finetune.evaluate(TASKS["sst2"], data.evals, outputs)["acc"] >= 90.0
    # one mean training loss per epoch; it starts near ln 2 (two balanced classes) and falls as the task is learnt
    assert len(epoch_losses) == 4 and 0.4 < epoch_losses[0] < 1.2 and epoch_losses[-1] < 0.5 * epoch_losses[0]


def test_max_train_examples_subsamples_and_is_recorded(workdir, tmp_path):
    sweep(
        str(workdir / "micro"),
        parse_tasks("rte"),
        tmp_path / "o",
        workdir / "glue",
        runs=1,
        seed=0,
        cfg=FinetuneConfig(epochs=1, max_length=32, max_train_examples=10),
        device="cpu",
        quiet=True,
    )
    record = json.loads((tmp_path / "o/rte/run_0/metrics.json").read_text())
    assert record["n_train"] == 10 and record["max_train_examples"] == 10
    assert len(record["train_loss_per_epoch"]) == 1 and record["train_loss_per_epoch"][0] > 0
    n = record["n_train_available"]
    assert n > 10 and f"Train sets subsampled: RTE to 10 of {n}." in (tmp_path / "o/results.md").read_text()
    # a cap at or above the train set's size removes nothing: not recorded, not labelled as subsampled
    sweep(
        str(workdir / "micro"),
        parse_tasks("rte"),
        tmp_path / "p",
        workdir / "glue",
        runs=1,
        seed=0,
        cfg=FinetuneConfig(epochs=1, max_length=32, max_train_examples=n),
        device="cpu",
        quiet=True,
    )
    record = json.loads((tmp_path / "p/rte/run_0/metrics.json").read_text())
    assert record["n_train"] == n and record["max_train_examples"] is None
    assert "subsampled" not in (tmp_path / "p/results.md").read_text()


def test_shards_split_a_sweep_and_the_encoder_is_read_once_per_sweep_with_runs_pending(workdir, tmp_path, monkeypatch):
    """Two --shard K/2 processes write disjoint halves of the unsharded sweep's runs, with the same records; each reads
    the encoder once, and a sweep started again with every run complete reads none."""
    from electra.finetune import sweep as sweep_loop

    reads = []
    real = sweep_loop.load_encoder
    monkeypatch.setattr(sweep_loop, "load_encoder", lambda *a: reads.append(a) or real(*a))
    model, tasks, cfg = str(workdir / "micro"), parse_tasks("sst2,rte"), FinetuneConfig(epochs=1, max_length=32)
    run = lambda out, shard=(0, 1): sweep(  # noqa: E731
        model, tasks, out, workdir / "glue", runs=2, seed=0, cfg=cfg, device="cpu", shard=shard, quiet=True
    )
    done = lambda out: {str(p.parent.relative_to(out)) for p in out.glob("*/run_*/metrics.json")}  # noqa: E731
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    run(whole)
    run(sharded, (0, 2))
    assert done(sharded) == {"sst2/run_0", "rte/run_0"}
    run(sharded, (1, 2))
    assert done(sharded) == done(whole) == {"sst2/run_0", "sst2/run_1", "rte/run_0", "rte/run_1"}
    for d in done(whole):
        assert (sharded / d / "metrics.json").read_text() == (whole / d / "metrics.json").read_text()
    assert len(reads) == 3
    run(sharded)
    assert len(reads) == 3


def test_missing_task_files_are_skipped_with_a_notice(workdir, tmp_path, capsys):
    results = sweep(
        str(workdir / "micro"),
        parse_tasks("qqp,rte"),
        tmp_path / "o",
        workdir / "glue" / "RTE",
        runs=1,
        seed=0,
        cfg=FinetuneConfig(epochs=1, max_length=32),
        device="cpu",
        quiet=True,
    )
    assert results["tasks"] == {}
    err = capsys.readouterr().err
    assert "QQP: no train set" in err and "RTE: no train set" in err


def test_model_without_tokenizer_is_one_clear_error(workdir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        (bare / f).write_bytes((workdir / "micro" / f).read_bytes())
    with pytest.raises(ElectraError, match="has no tokenizer"):
        sweep(
            str(bare),
            parse_tasks("rte"),
            tmp_path / "o",
            workdir / "glue",
            runs=1,
            seed=0,
            cfg=FinetuneConfig(),
            device="cpu",
            quiet=True,
        )
    assert not (tmp_path / "o").exists()  # nothing half-written


def _cli(monkeypatch):
    from electra import cli

    monkeypatch.setattr(cli, "COMMANDS", {k: v for k, v in cli.COMMANDS.items() if k in ("finetune", "submit")})
    return cli


def test_cli_recipe_flags_reach_the_config(monkeypatch):
    args = (
        _cli(monkeypatch)
        .build_parser()
        .parse_args(
            [
                "finetune",
                "--model",
                "m",
                "--out",
                "o",
                "--learning-rate",
                "1e-4",
                "--loss-reduction",
                "mean",
                "--layer-decay-mode",
                "paper",
                "--double-unordered",
                "false",
                "--max-train-examples",
                "7",
            ]
        )
    )
    cfg = FinetuneConfig(**{k[4:]: v for k, v in vars(args).items() if k.startswith("ft__")})
    assert (cfg.learning_rate, cfg.loss_reduction, cfg.layer_decay_mode, cfg.double_unordered) == (
        1e-4,
        "mean",
        "paper",
        False,
    )
    assert cfg.max_train_examples == 7 and cfg.layerwise_lr_decay is None and cfg.epochs is None


def test_cli_errors_are_one_line_exit_2(monkeypatch, tmp_path, capsys):
    cli = _cli(monkeypatch)
    assert cli.main(["submit", str(tmp_path / "nowhere")]) == 2
    assert cli.main(["submit", str(tmp_path), "--pick", "ensemble:x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"electra submit: error: sweep directory {tmp_path / 'nowhere'} does not exist",
        "electra submit: error: --pick ensemble:x: expected ensemble:K with K a positive integer",
    ]


def test_pretraining_run_directory_gives_the_discriminator_encoder(tmp_path):
    ckpt = pytest.importorskip("electra.checkpoint")
    from electra.config import preset
    from electra.objective import SpecialIds

    tok = load_tokenizer(write_vocab(tmp_path / "vocab.txt"))
    cfg = preset("tiny", vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, embedding_size=16)
    torch.manual_seed(1)
    model = init.build(cfg, SpecialIds.from_tokenizer(tok))
    run = tmp_path / "run"
    run.mkdir()
    meta = ckpt.run_config(cfg, {}, {})
    io.write_json(run / "config.json", meta)
    tok.save(run / "tokenizer")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ckpt.save_checkpoint(run / "checkpoints", "latest", model, opt, None, {"step": 0}, meta, tok)
    encoder, model_cfg, loaded_tok = load_encoder(str(run))
    assert model_cfg.hidden_size == 32 and loaded_tok.fingerprint() == tok.fingerprint()
    want = model.discriminator.electra.state_dict()  # `tiny` delivers its discriminator as trained
    for k, v in encoder.state_dict().items():
        torch.testing.assert_close(v, want[k], msg=k)


@pytest.mark.parametrize("encoder_dropout", [None, 0.0])
def test_encoder_dropout_replaces_the_models_own(workdir, encoder_dropout):
    """encoder_dropout=0 (with no head dropout) makes the finetuned model deterministic in training mode; unset, the
    model's own 0.1 applies. The loaded model config itself is never changed."""
    task = TASKS["sst2"]
    tok = load_tokenizer(workdir / "micro")
    encoder, cfg, _ = load_encoder(str(workdir / "micro"))
    assert cfg.hidden_dropout_prob == cfg.attention_probs_dropout_prob == 0.1
    ft = FinetuneConfig(epochs=1, max_length=32, head_dropout=0.0, encoder_dropout=encoder_dropout).resolve(cfg, task)
    data = finetune.prepare_task(task, workdir / "glue", tok, ft)
    model, _ = finetune.finetune_run(data, encoder, cfg, ft, 0, torch.device("cpu"), tok.pad_id)
    x = torch.randint(5, len(VOCAB), (4, 12))
    model.train()
    train_out = model(x)
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
    if encoder_dropout == 0.0:
        torch.testing.assert_close(train_out, eval_out)
    else:
        assert not torch.allclose(train_out, eval_out)
    assert cfg.hidden_dropout_prob == 0.1  # the loaded config is not changed
    assert ft.encoder_config(cfg).hidden_dropout_prob == (0.1 if encoder_dropout is None else 0.0)


def test_encoder_dropout_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match="encoder_dropout must be in"):
        FinetuneConfig(encoder_dropout=1.0)
