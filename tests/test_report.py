"""`electra report`: the numbers in its tables (statistics over finetuning runs and over sweeps), its inputs and
its plots, on synthetic run directories whose statistics are known."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from electra.cli import main
from electra.report import write_report
from electra.report.findings import build_report
from electra.report.runs import discover

LABEL3 = "GLUE-3 (no MRPC, STS-B, QQP, MNLI, QNLI)"
SWEEP_A = {"cola": [50.0, 54.0, 46.0], "sst2": [80.0, 82.0], "rte": [60.0, 62.0, 58.0, 64.0]}
SWEEP_B = {"cola": [40.0, 44.0], "sst2": [81.0, 85.0], "rte": [55.0, 57.0], "mrpc": [70.0, 72.0]}


def write_sweep(root: Path, scores: dict[str, list[float]], model: str = "runs/pretrain") -> Path:
    """Run directories as `electra finetune` writes them (config.json, metrics.json), with the given scores."""
    from electra.finetune.tasks import TASKS

    for task, values in scores.items():
        for seed, v in enumerate(values):
            d = root / task / f"run_{seed}"
            d.mkdir(parents=True)
            metrics = {m: v - i for i, m in enumerate(TASKS[task].metrics)}  # second metric (e.g. MRPC acc) = v - 1
            (d / "config.json").write_text(json.dumps({"task": task, "seed": seed, "model": model, "finetune": {}}))
            (d / "metrics.json").write_text(
                json.dumps(
                    {
                        "task": task,
                        "seed": seed,
                        "metrics": metrics,
                        "score": metrics[TASKS[task].score],
                        "n_train": 100,
                        "max_train_examples": None,
                    }
                )
            )
    return root


def write_pretrain_run(root: Path) -> Path:
    root.mkdir(parents=True)
    cfg = {
        "format": "electra-pretraining-run",
        "config": {
            "max_steps": 50,
            "batch_size": 32,
            "max_length": 128,
            "model": {"hidden_size": 128, "num_hidden_layers": 4},
        },
    }
    (root / "config.json").write_text(json.dumps(cfg))
    lines = []
    for step in range(10, 60, 10):
        lines.append(
            {
                "split": "train",
                "step": step,
                "loss": 30.0 - step / 10,
                "gen_loss": 10.0 - step / 20,
                "disc_loss": 0.4 - step / 1000,
                "gen_accuracy": step / 100,
                "disc_accuracy": 0.8 + step / 1000,
            }
        )
        if step == 30:  # a resumed run rewrites the steps after its checkpoint: the last record wins
            lines.append({**lines[-1], "loss": 99.0})
    lines.insert(1, {"split": "train", "step": 20, "loss": 1.0, "gen_loss": 1.0, "disc_loss": 0.1})  # superseded
    for step in (25, 50):
        lines.append(
            {
                "split": "eval",
                "step": step,
                "gen_loss": 9.0,
                "gen_accuracy": 0.1,
                "disc_loss": 0.39,
                "disc_accuracy": 0.86,
                "disc_auc": 0.5 + step / 500,
                "disc_precision": 0.2,
                "disc_recall": 0.1,
            }
        )
    text = "\n".join(json.dumps(r) for r in lines) + "\n" + '{"split": "train", "st'  # a line still being written
    (root / "metrics.jsonl").write_text(text)
    return root


def add_records(run: Path, *records: dict) -> None:
    """Append metrics records to a run from `write_pretrain_run`, in place of its half-written last line."""
    kept = (run / "metrics.jsonl").read_text().rsplit("\n", 1)[0].splitlines()
    (run / "metrics.jsonl").write_text("\n".join([*kept, *map(json.dumps, records)]) + "\n")


@pytest.fixture
def inputs(tmp_path):
    a = write_sweep(tmp_path / "glue_seed0", SWEEP_A)
    b = write_sweep(tmp_path / "glue_seed1", SWEEP_B)
    run = write_pretrain_run(tmp_path / "pretrain_seed0")
    return run, a, b


def test_statistics_over_runs_and_sweeps(inputs):
    run, a, b = inputs
    runs, sweeps = discover([run, a, b])
    report = build_report(runs, sweeps, "median")
    ga, gb = report["glue"]
    assert ga["scores"] == {"cola": 50.0, "sst2": 81.0, "rte": 61.0}
    assert ga["label"] == LABEL3 and ga["average"] == pytest.approx((50 + 81 + 61) / 3)
    assert ga["std"]["cola"] == pytest.approx(4.0)  # sample std of 50, 54, 46
    assert ga["std"]["rte"] == pytest.approx(np.std([60, 62, 58, 64], ddof=1))
    assert ga["runs"] == {"cola": 3, "sst2": 2, "rte": 4}
    assert gb["label"] == "GLUE-4 (no STS-B, QQP, MNLI, QNLI)"
    # stability over the two sweeps: only the tasks both have (MRPC is B's alone)
    st = report["stability"]
    avg_a, avg_b = (50 + 81 + 61) / 3, (42 + 83 + 56) / 3
    assert st["tasks"] == ["cola", "sst2", "rte"] and st["label"] == LABEL3
    assert st["averages"]["glue_seed0"] == pytest.approx(avg_a) and st["averages"]["glue_seed1"] == pytest.approx(avg_b)
    s = st["summary"]
    assert s["n"] == 2 and s["mean"] == pytest.approx((avg_a + avg_b) / 2)
    assert s["std"] == pytest.approx(abs(avg_a - avg_b) / np.sqrt(2))
    assert (s["max"], s["min"]) == (pytest.approx(avg_a), pytest.approx(avg_b))
    assert st["per_task"]["cola"]["std"] == pytest.approx(np.std([50, 42], ddof=1))
    # another statistic over runs
    report_mean = build_report(runs, sweeps, "mean")
    assert report_mean["glue"][0]["scores"]["rte"] == pytest.approx(61.0)
    assert report_mean["glue"][1]["scores"]["mrpc"] == pytest.approx(70.0)  # MRPC scores by acc = f1 - 1 here
    assert build_report(runs, sweeps, "max")["stability"]["averages"]["glue_seed0"] == pytest.approx((54 + 82 + 64) / 3)


def test_pretraining_summary_uses_the_last_record_of_each_step(inputs):
    run, _, _ = inputs
    runs, _ = discover([run])
    r = runs[0]
    assert [x["step"] for x in r.train] == [10, 20, 30, 40, 50]
    assert r.train[1]["loss"] == pytest.approx(28.0) and r.train[2]["loss"] == 99.0
    p = build_report(runs, [], "median")["pretrain"][0]
    assert p["step"] == 50 and p["max_steps"] == 50 and p["train"]["loss"] == pytest.approx(25.0)
    assert p["eval"]["step"] == 50 and p["eval"]["disc_auc"] == pytest.approx(0.6)


def test_report_folder_tables_and_plots(inputs, tmp_path, capsys):
    run, a, b = inputs
    out = tmp_path / "report"
    assert main(["report", str(tmp_path), "--out", str(out)]) == 0  # the parent folder: everything inside it
    printed = capsys.readouterr().out
    index = (out / "index.md").read_text()
    assert index in printed
    avg_a, avg_b = (50 + 81 + 61) / 3, (42 + 83 + 56) / 3
    mean, std = (avg_a + avg_b) / 2, abs(avg_a - avg_b) / np.sqrt(2)
    assert f"| {LABEL3} | {mean:.2f} | {std:.2f} | {avg_a:.2f} | {avg_b:.2f} |" in index
    row = (
        f"| glue_seed0 | 50.00 | 81.00 | — | — | — | — | — | 61.00 | {avg_a:.2f} "
        "(GLUE-3, no MRPC, STS-B, QQP, MNLI, QNLI) |"
    )
    assert row in index
    assert "| glue_seed0 | CoLA | mcc | 3 | 50.00 | 50.00 | 4.00 | 54.00 | 46.00 |" in index
    assert "| runs | 3/2 | 2/2 | 0/2 |" in index
    assert "| pretrain_seed0 | 50/50 | 128 / 4 | 32 × 128 | 25.000 |" in index
    for name in ("pretrain_loss.png", "pretrain_accuracy.png", "glue.png"):
        assert f"]({name})" in index
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert json.loads((out / "report.json").read_text())["stability"]["summary"]["mean"] == pytest.approx(mean)


def test_single_sweep_has_no_stability_table_and_results_json_suffices(tmp_path):
    from electra.finetune.results import write_results

    a = write_sweep(tmp_path / "a", SWEEP_A)
    write_results(a)
    only_results = tmp_path / "copy"
    only_results.mkdir()
    (only_results / "results.json").write_text((a / "results.json").read_text())
    text = write_report([only_results], tmp_path / "r")
    assert "pretraining stability" not in text and "| copy | 50.00 | 81.00 |" in text
    assert (tmp_path / "r" / "glue.png").is_file() and not (tmp_path / "r" / "pretrain_loss.png").exists()


def test_bad_inputs(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "neither a pretraining run" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    assert main(["report", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "metrics.jsonl:2: not a JSON object" in capsys.readouterr().err


def test_findings_state_the_regime_the_probe_the_baselines_and_constant_runs(tmp_path):
    """What a newcomer must be told in words: an all-original discriminator, the probe against random weights,
    runs that predict one class, tasks ranked at chance, and each sweep against the majority class and against
    random weights."""
    run = write_pretrain_run(tmp_path / "run")
    add_records(
        run,
        {
            "split": "eval",
            "step": 60,
            "disc_recall": 0.004,
            "disc_precision": 0.5,
            "disc_auc": 0.55,
            "probe_cls": 0.30,
            "probe_mean": 0.35,
            "probe_random_cls": 0.45,
            "probe_random_mean": 0.44,
            "probe_majority": 0.15,
        },
    )
    pretrained = write_sweep(tmp_path / "glue", {"rte": [50.0, 52.0], "sst2": [51.0, 51.0]})
    random_ = write_sweep(tmp_path / "glue_random", {"rte": [55.0, 57.0], "sst2": [70.0, 72.0]}, model="random:tiny")
    for task, majority in (("rte", 52.7), ("sst2", 50.9)):
        for seed in (0, 1):
            path = pretrained / task / f"run_{seed}" / "metrics.json"
            record = json.loads(path.read_text())
            record.update(majority_metrics={"acc": majority}, constant_predictions=task == "sst2")
            record.update(dev_auc=0.51 if task == "rte" else 0.5, dev_auc_chance_band=0.07 if task == "rte" else 0.04)
            path.write_text(json.dumps(record))
    report = build_report(*discover([run, pretrained, random_]))
    text = "\n".join(report["findings"])
    assert "still calls almost every token original (held-out recall 0.4 %" in text
    other = write_pretrain_run(tmp_path / "other_run")
    add_records(
        other, {"split": "eval", "step": 60, "disc_recall": 0.03, "disc_accuracy": 0.86, "replaced_fraction": 0.13}
    )
    regime = "\n".join(build_report(*discover([other]))["findings"])
    assert "held-out accuracy 0.8600 is not above calling every token original (0.8700; recall 3.0 %" in regime
    assert "[CLS] 0.300, mean-pooled 0.350; the same probe on random weights 0.450 / 0.440" in text
    assert "the pretrained features are below random ones" in text
    assert "SST-2 (2 of 2)" in text and "RTE (" not in text.split("label prior")[1].split("\n")[0]
    assert "51.00 against 51.80 for always predicting the majority class" in text  # (51 + 51) / 2, (52.7 + 50.9) / 2
    assert "**glue** is worse than random initialisation (glue_random): GLUE-2" in text
    chance = "**glue**: dev ROC AUC at chance: SST-2 (median 0.500, chance 0.5 ± 0.040), RTE (median 0.510, chance"
    assert chance in text and "**glue_random**: dev ROC AUC" not in text  # its runs predate the record
    assert "51.00 against 63.50 (-12.50; closer than" in text
    # the GLUE chart draws each task's majority-class score as its floor
    assert report["glue"][0]["majority"] == {"rte": 52.7, "sst2": 50.9} and report["glue"][1]["majority"] == {}
    # ... and hatches the bars of tasks ranked at chance (none for the sweep whose runs predate the record)
    assert sorted(report["glue"][0]["at_chance"]) == ["rte", "sst2"] and report["glue"][1]["at_chance"] == []


@pytest.mark.parametrize(
    ("best", "test_examples", "verdict"),
    [
        (0.475, 600, "level with"),  # the built-in probe's size: 0.025 below is inside 2 * sqrt(2 * .25 / 600) = 0.058
        (0.43, 600, "below"),
        (0.56, 600, "above"),
        (0.475, 60_000, "below"),  # the same gap on a hundred times the examples is real
        (0.475, None, "level with"),  # runs from before the count was logged: 0.03
    ],
)
def test_probe_verdict_allows_for_the_test_set_size(tmp_path, best, test_examples, verdict):
    """The report calls the probe above or below random weights only beyond the noise of its test set."""
    from electra.stats import probe_margin

    assert probe_margin(0.5, 600) == pytest.approx(0.0577, abs=1e-4)
    run = write_pretrain_run(tmp_path / "run")
    record = {"split": "eval", "step": 60, "probe_cls": best, "probe_mean": best - 0.01}
    record.update(probe_random_cls=0.49, probe_random_mean=0.50, probe_majority=0.15)
    if test_examples is not None:
        record["probe_test_examples"] = test_examples
    add_records(run, record)
    text = "\n".join(build_report(*discover([run]))["findings"])
    assert f"the pretrained features are {verdict} random ones" in text
    assert (f"noise of {test_examples} test examples" if test_examples else "a few hundred test examples") in text


@pytest.mark.parametrize(
    ("std", "n", "verdict", "band"),
    [
        # both sweeps with sd s on each of 2 tasks over n seeds: band = 2 * sqrt(2 * (2 s^2 / n) / 4) = 2 s / sqrt(n)
        (None, 3, "better than", 0.5),  # no spread recorded: the floor, 0.5
        (0.1, 3, "better than", 0.5),  # a tiny spread (0.12): still the floor
        (0.5, 3, "better than", 0.58),  # 2 * 0.5 / sqrt(3)
        (1.5, 3, "level with", 1.73),  # 2 * 1.5 / sqrt(3): +0.8 is inside the noise
        (1.5, 2, "level with", 2.12),  # two seeds: 2 * 1.5 / sqrt(2)
        (3.0, 1, "better than", 0.5),  # one run has no spread to read: the floor
    ],
)
def test_a_glue_average_within_the_finetuning_seeds_noise_of_random_weights_is_level(std, n, verdict, band):
    """The verdict against random weights uses twice the standard error of the two averages' difference, from
    each task's spread over finetuning seeds, never less than 0.5 points."""
    from types import SimpleNamespace

    from electra.report.findings import findings
    from electra.report.scores import average_noise

    def glue(name, model, average):
        return {"name": name, "model": model, "tasks": ["sst2", "rte"], "average": average, "label": "GLUE-2"}

    stats = {"n": n} if std is None else {"n": n, "std": std}
    task = {"constant_runs": 0, "n_runs": n, "metrics": {"acc": stats}}
    sweep = SimpleNamespace(per_task={"sst2": task, "rte": task})
    if std is not None and n > 1:
        assert average_noise(sweep, ["sst2", "rte"]) == pytest.approx(math.sqrt(2 * std**2 / n) / 2)
    report = {"glue": [glue("a", "run", 50.8), glue("r", "random:tiny", 50.0)], "pretrain": []}
    text = "\n".join(findings(report, [sweep, sweep]))
    stated = f"**a** is {verdict} random initialisation (r): GLUE-2 50.80 against 50.00 (+0.80; closer than {band:.2f}"
    assert stated in text


def test_a_comparison_where_neither_sweep_learned_anything_says_so():
    """Both sweeps at chance on every two-class task: the verdict against random weights says it compares noise;
    as soon as one sweep ranks one task above chance, it does not."""
    from types import SimpleNamespace

    from electra.report.findings import findings

    def glue(name, model, average):
        scores = {"sst2": average, "rte": average}
        return {"name": name, "model": model, "tasks": ["sst2", "rte"], "average": average, "label": "GLUE-2"} | {
            "scores": scores
        }

    def sweep(sst2_auc):
        task = {"constant_runs": 0, "n_runs": 3, "display": "X", "dev_auc_chance_band": 0.07}
        return SimpleNamespace(
            per_task={
                "sst2": {**task, "dev_auc": {"median": sst2_auc}},
                "rte": {**task, "dev_auc": {"median": 0.52}},
            }
        )

    report = {"glue": [glue("a", "run", 52.0), glue("r", "random:tiny", 51.0)], "pretrain": []}
    noise = "Neither sweep learned any of its two-class tasks (dev ROC AUC at chance on each)"
    assert noise in "\n".join(findings(report, [sweep(0.49), sweep(0.53)]))
    assert noise not in "\n".join(findings(report, [sweep(0.49), sweep(0.75)]))
    assert noise not in "\n".join(findings(report, [sweep(0.75), sweep(0.53)]))


def test_tasks_at_chance_for_both_sweeps_do_not_decide_the_verdict_against_random_weights():
    """RTE ranked at chance by both sweeps is label prior plus noise: the verdict is made on the tasks either sweep
    learnt, in both directions, with the full average beside it; a task one sweep learnt stays in the verdict."""
    from types import SimpleNamespace

    from electra.report.findings import findings

    def glue(name, model, scores):
        average = sum(scores.values()) / len(scores)
        return {"name": name, "model": model, "tasks": ["sst2", "mrpc", "rte"], "label": "GLUE-3"} | {
            "average": average,
            "scores": scores,
        }

    def sweep(rte_auc, sst2_auc=0.8):
        task = {"constant_runs": 0, "n_runs": 3, "dev_auc_chance_band": 0.07, "metrics": {"acc": {"n": 3, "std": 0.3}}}
        aucs = {"sst2": sst2_auc, "mrpc": 0.7, "rte": rte_auc}
        return SimpleNamespace(per_task={t: {**task, "display": t, "dev_auc": {"median": a}} for t, a in aucs.items()})

    # RTE at chance for both, 6.5 points lower for the pretrained sweep (the random one predicted the majority)
    pretrained = glue("a", "run", {"sst2": 60.0, "mrpc": 70.0, "rte": 46.2})
    random_ = glue("r", "random:tiny", {"sst2": 60.2, "mrpc": 69.9, "rte": 52.7})
    text = "\n".join(findings({"glue": [pretrained, random_], "pretrain": []}, [sweep(0.46), sweep(0.50)]))
    assert (
        "**a** is level with random initialisation (r) on the tasks either learnt (SST-2, MRPC): 65.00 against " in text
    )
    assert "65.05 (-0.05; closer than 0.50" in text
    assert "RTE is at chance for both (dev ROC AUC), so its scores differ by noise only; with it, GLUE-3 58.73 " in text
    assert "against 60.93 (-2.20)." in text
    # the same gap the other way round is not a win either
    flipped = glue("a", "run", {"sst2": 60.0, "mrpc": 70.0, "rte": 59.2})
    text = "\n".join(findings({"glue": [flipped, random_], "pretrain": []}, [sweep(0.46), sweep(0.50)]))
    assert "**a** is level with random initialisation (r) on the tasks either learnt (SST-2, MRPC)" in text
    # a task that one sweep learnt is a real difference: the whole average decides
    text = "\n".join(findings({"glue": [pretrained, random_], "pretrain": []}, [sweep(0.70), sweep(0.50)]))
    assert "**a** is worse than random initialisation (r): GLUE-3 58.73 against 60.93 (-2.20; closer than" in text
    assert "either learnt" not in text
    # two tasks at chance for both are named together; SST-2 learnt by neither sweep ...
    text = "\n".join(findings({"glue": [pretrained, random_], "pretrain": []}, [sweep(0.46, 0.52), sweep(0.50, 0.49)]))
    assert "on the tasks either learnt (MRPC): 70.00 against 69.90" in text
    assert "SST-2 and RTE are at chance for both (dev ROC AUC), so their scores differ by noise only; with them" in text


def test_weight_change_finding_names_the_cause_by_the_runs_epsilon():
    """Layers within 10 % of their start are "hardly trained": with a large Adam epsilon that is the cause named;
    with the official one, too few steps; layers that moved more get no such verdict."""
    from electra.report.findings import moved_finding

    small = {
        "discriminator embeddings": 0.37,
        "discriminator feed-forward": 0.029,
        "discriminator attention q/k": 0.018,
    }
    tiny = moved_finding("run", small, 1e-2)
    assert "1.8%–2.9%" in tiny and "hardly trained" in tiny and "epsilon 0.01" in tiny
    official = moved_finding("run", small, 1e-6)
    assert "hardly trained" in official and "epsilon" not in official and "too few steps" in official
    trained = moved_finding("run", {"discriminator embeddings": 1.6, "discriminator feed-forward": 0.86}, 1e-6)
    assert "86.0%–86.0%" in trained and "hardly trained" not in trained
    mlm = moved_finding("run", {"encoder embeddings": 2.5, "encoder feed-forward": 0.05}, None)
    assert "5.0%–5.0%" in mlm and "too few steps" in mlm


def test_findings_compare_the_discriminator_with_word_rarity_and_explain_a_falling_auc(tmp_path):
    """A discriminator AUC level with word rarity's is named a frequency detector; one that fell together with it is
    explained as the generator learning word frequencies; a margin is credited to context; old logs say nothing."""

    def findings_for(evals):
        run = write_pretrain_run(tmp_path / f"run{len(list(tmp_path.iterdir()))}")
        add_records(run, *({"split": "eval", "step": s, "disc_auc": a, "disc_auc_unigram": u} for s, a, u in evals))
        return [f for f in build_report(*discover([run]))["findings"] if "word rarity" in f or "rarity in" in f]

    falling = findings_for([(60, 0.81, 0.90), (70, 0.72, 0.71)])
    assert len(falling) == 1
    assert "AUC 0.720 at step 70; scoring each token by its rarity in the training data alone gives 0.710" in falling[0]
    assert "by word frequency, not yet from context" in falling[0]
    assert "fell from 0.810 at step 60 while word rarity's fell from 0.900" in falling[0]
    learnt = findings_for([(60, 0.70, 0.75), (70, 0.85, 0.64)])
    assert "the 0.210 above that is what the discriminator reads from context." in learnt[0] and "fell" not in learnt[0]
    early = findings_for([(60, 0.72, 0.93)])
    assert "gives 0.930: the discriminator has not yet learnt even which words are rare" in early[0]
    # the AUC fell but word rarity's did not: not the shortcut closing, so no such explanation
    other = findings_for([(60, 0.90, 0.70), (70, 0.75, 0.70)])
    assert "fell" not in other[0]
    assert findings_for([]) == []  # logs from before the baseline existed


def test_findings_compare_the_generator_with_a_frequency_only_generator(tmp_path):
    """A generator loss level with the unigram model's is named a frequency predictor; one above it has not learnt
    frequencies; the nats below it are credited to context; logs without the baseline say nothing."""

    def findings_for(loss, unigram):
        run = write_pretrain_run(tmp_path / f"run{len(list(tmp_path.iterdir()))}")
        record = {"split": "eval", "step": 70, "gen_loss": loss}
        if unigram is not None:
            record["gen_loss_unigram"] = unigram
        add_records(run, record)
        return [f for f in build_report(*discover([run]))["findings"] if "generator loss" in f]

    level = findings_for(6.55, 6.53)
    assert len(level) == 1
    assert "generator loss 6.550 at step 70; predicting every masked word by its frequency" in level[0]
    assert "gives 6.530: the generator predicts masked words by their frequency alone" in level[0]
    assert "not yet learnt even which words are frequent" in findings_for(7.3, 6.53)[0]
    # with a frozen word table (its tied output layer) staying above frequencies is expected, and said so
    frozen = write_pretrain_run(tmp_path / "frozen")
    meta = json.loads((frozen / "config.json").read_text())
    meta["config"]["freeze_word_embeddings"] = True
    (frozen / "config.json").write_text(json.dumps(meta))
    add_records(frozen, {"split": "eval", "step": 70, "gen_loss": 8.1, "gen_loss_unigram": 6.6})
    said = [f for f in build_report(*discover([frozen]))["findings"] if "generator loss" in f]
    assert "as expected with a frozen word table" in said[0] and "not yet learnt" not in said[0]
    assert "the 1.530 nats below that are what the generator reads from context" in findings_for(5.0, 6.53)[0]
    assert findings_for(6.55, None) == []


def test_loss_plot_draws_the_frequency_only_generator(tmp_path, monkeypatch):
    """The generator-loss panel carries the held-out unigram loss as its own dotted line, at the logged values."""
    import electra.report.plots as plots

    run = write_pretrain_run(tmp_path / "run")
    add_records(
        run, *({"split": "eval", "step": s, "gen_loss": 7.0, "gen_loss_unigram": u} for s, u in ((4, 6.6), (8, 6.5)))
    )
    saved = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: saved.append(fig))
    runs, _ = discover([run])
    plots.plot_losses(runs, tmp_path / "losses.png")
    gen_ax = saved[0].axes[plots.LOSS_KEYS.index("gen_loss")]
    lines = [ln for ln in gen_ax.get_lines() if "word frequency alone" in ln.get_label()]
    assert len(lines) == 1 and list(lines[0].get_ydata()) == [6.6, 6.5] and lines[0].get_linestyle() == ":"
    other = saved[0].axes[plots.LOSS_KEYS.index("disc_loss")]
    assert not [ln for ln in other.get_lines() if "word frequency alone" in ln.get_label()]


def test_probe_plot_shades_the_band_the_report_calls_level(tmp_path, monkeypatch):
    """The probe plot's band around the random-initialisation line is exactly the report's margin."""
    import electra.report.plots as plots
    from electra.stats import probe_margin

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    run = write_pretrain_run(tmp_path / "run")
    record = {"split": "eval", "step": 60, "probe_cls": 0.47, "probe_mean": 0.48, "probe_majority": 0.15}
    record.update(probe_random_cls=0.49, probe_random_mean=0.50, probe_test_examples=600)
    add_records(run, record)
    plots.plot_probe(discover([run])[0], tmp_path / "probe.png")
    for ax, base in zip(figures[0].axes, (0.49, 0.50), strict=True):
        (band,) = [p for p in ax.patches if "test-set noise" in p.get_label()]
        ys = ax.transData.inverted().transform(band.get_transform().transform(band.get_path().vertices))[:, 1]
        margin = probe_margin(base, 600)
        assert ys.min() == pytest.approx(base - margin) and ys.max() == pytest.approx(base + margin)


def test_a_widened_accuracy_axis_stays_inside_zero_and_one():
    """An accuracy near 0 (a generator early in training) gets at least 0.1 of height, shifted up so that the axis
    never shows a negative accuracy; an unbounded axis widens symmetrically."""
    from matplotlib.figure import Figure

    from electra.report.plots import _min_span

    ax = Figure().subplots()
    ax.plot([1, 2], [0.002, 0.018])
    _min_span(ax, 0.1, bounds=(0.0, 1.0))
    lo, hi = ax.get_ylim()
    assert lo == pytest.approx(0.0) and hi - lo == pytest.approx(0.1)
    ax = Figure().subplots()
    ax.plot([1, 2], [0.002, 0.018])
    _min_span(ax, 0.1)
    lo, hi = ax.get_ylim()
    assert lo < 0 and hi - lo == pytest.approx(0.1)


def test_the_glue_plot_legend_hides_no_value_label(tmp_path, monkeypatch):
    """The value above each bar stays readable: the legend sits in a band above the tallest bar, not on a label
    (it covered WNLI's in the quick start's plot)."""
    import electra.report.plots as plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig))
    tasks = ("cola", "sst2", "mrpc", "stsb", "rte", "wnli")
    model = dict(zip(tasks, (1.3, 56.5, 67.6, 10.7, 48.9, 48.6), strict=True))
    random = dict(zip(tasks, (0.0, 56.4, 69.1, 8.8, 52.7, 41.5), strict=True))
    std = dict(zip(tasks, (1.9, 1.2, 2.4, 4.7, 2.3, 11.0), strict=True))
    glue = [
        {"name": n, "label": "GLUE-5", "average": 37.0, "scores": s, "std": std, "majority": {"sst2": 50.9}}
        for n, s in (("glue", model), ("glue_random", random))
    ]
    plots.plot_glue({"glue": glue, "stat": "median"}, tmp_path / "glue.png")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figures[0])
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = figures[0].axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    labels = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(labels) == 12 and not any(legend.overlaps(b) for b in labels)
