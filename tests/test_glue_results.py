import json
import zipfile

import numpy as np
import pytest

from electra.errors import ElectraError
from electra.finetune.results import aggregate, glue_label, markdown_table, save_predictions
from electra.finetune.submit import Pick, build_submission, choose_runs, parse_pick, write_zip
from electra.finetune.tasks import TASKS
from electra.io import write_json


def _run(out, task, seed, metrics, test_outputs=None):
    d = out / task / f"run_{seed}"
    if test_outputs is not None:
        for split, outputs in test_outputs.items():
            save_predictions(d / f"predictions_{split}.npz", [str(i) for i in range(len(outputs))], outputs, None)
    write_json(
        d / "metrics.json",
        {
            "task": task,
            "seed": seed,
            "metrics": metrics,
            "score": metrics[TASKS[task].score],
            "n_train": 100,
            "max_train_examples": None,
        },
    )


def test_statistics_over_runs(tmp_path):
    for seed, mcc in enumerate([50.0, 60.0, 40.0, 70.0]):
        _run(tmp_path, "cola", seed, {"mcc": mcc})
    s = aggregate(tmp_path)["tasks"]["cola"]["metrics"]["mcc"]
    assert s == pytest.approx(
        {"n": 4, "median": 55.0, "mean": 55.0, "std": np.std([50, 60, 40, 70], ddof=1), "max": 70.0, "min": 40.0}
    )


def test_tasks_ranked_at_chance_are_named_and_older_records_are_not(tmp_path):
    """A task whose median dev AUC lies within the chance band is named in the table's notes; one clear of it, and
    runs written before the AUC was recorded, are not."""
    for seed, (rte, sst2) in enumerate([(0.47, 0.74), (0.52, 0.75), (0.55, 0.76)]):
        for task, auc, band in (("rte", rte, 0.0696), ("sst2", sst2, 0.0392)):
            _run(tmp_path, task, seed, {"acc": 50.0 + seed})
            path = tmp_path / task / f"run_{seed}" / "metrics.json"
            write_json(path, {**json.loads(path.read_text()), "dev_auc": auc, "dev_auc_chance_band": band})
        _run(tmp_path, "mrpc", seed, {"f1": 80.0, "acc": 68.0})
    results = aggregate(tmp_path)
    assert results["tasks"]["rte"]["dev_auc"]["median"] == pytest.approx(0.52)
    assert results["tasks"]["mrpc"]["dev_auc"] is None
    note = markdown_table(results).split("Dev ROC AUC at chance: ")[1].split("\n")[0]
    assert note.startswith("RTE (median 0.520, chance 0.5 ± 0.070). The runs have not learned this task:")
    assert "SST-2" not in note and "MRPC" not in note
    for seed in range(3):  # the same runs ordering RTE's dev examples well: no note
        path = tmp_path / "rte" / f"run_{seed}" / "metrics.json"
        write_json(path, {**json.loads(path.read_text()), "dev_auc": 0.58 + seed / 100})
    assert "at chance" not in markdown_table(aggregate(tmp_path))


def test_older_run_records_get_their_auc_from_the_stored_dev_predictions(tmp_path):
    """A metrics.json written before `dev_auc` existed: the AUC comes from predictions_dev.npz; without stored dev
    labels there is none."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50)
    outputs = rng.normal(size=(50, 2)) + np.stack([np.zeros(50), labels], 1)
    _run(tmp_path, "sst2", 0, {"acc": 60.0})
    save_predictions(tmp_path / "sst2/run_0/predictions_dev.npz", [str(i) for i in range(50)], outputs, labels)
    _run(tmp_path, "rte", 0, {"acc": 50.0}, test_outputs={"dev": rng.normal(size=(50, 2))})  # no labels stored
    tasks = aggregate(tmp_path)["tasks"]
    expected = roc_auc_score(labels, outputs[:, 1] - outputs[:, 0])
    assert tasks["sst2"]["dev_auc"]["median"] == pytest.approx(expected) and expected > 0.6
    assert tasks["sst2"]["dev_auc_chance_band"] == pytest.approx(
        2 * np.sqrt(51 / (12 * labels.sum() * (50 - labels.sum())))
    )
    assert tasks["rte"]["dev_auc"] is None
    for junk in (b"not an npz", b"PK\x03\x04 a truncated zip"):  # unreadable: the metrics still aggregate
        (tmp_path / "sst2/run_0/predictions_dev.npz").write_bytes(junk)
        tasks = aggregate(tmp_path)["tasks"]
        assert tasks["sst2"]["dev_auc"] is None and tasks["sst2"]["metrics"]["acc"]["median"] == 60.0


def test_subsampling_note_names_only_tasks_whose_cap_removed_examples_also_for_older_run_records(tmp_path):
    def record(task, seed, n_train, cap, available):
        d = tmp_path / task / f"run_{seed}"
        write_json(
            d / "metrics.json",
            {
                "task": task,
                "seed": seed,
                "metrics": {"acc": 50.0},
                "score": 50.0,
                "n_train": n_train,
                "max_train_examples": cap,
                **({"n_train_available": available} if available else {}),
            },
        )

    record("wnli", 0, 635, 2000, None)  # older record: the cap is stored although it removed nothing
    record("wnli", 1, 635, None, 635)  # newer record of the same sweep
    record("rte", 0, 2000, 2000, None)  # older record whose cap did bind
    record("rte", 1, 2000, 2000, 2490)
    res = aggregate(tmp_path)
    assert res["tasks"]["wnli"]["max_train_examples"] == [None]
    assert res["tasks"]["rte"]["max_train_examples"] == [2000]
    note = markdown_table(res, "m").splitlines()[-1]
    assert note == "Train sets subsampled: RTE to 2000 of 2,490."


def test_glue_label_never_passes_a_partial_average_off_as_glue8():
    assert glue_label(["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"]) == "GLUE-8"
    assert glue_label(["cola", "sst2", "mrpc", "stsb", "qnli", "rte", "wnli"]) == "GLUE-6 (no QQP, MNLI)"


def test_average_uses_each_tasks_score_metric_and_skips_wnli(tmp_path):
    _run(tmp_path, "mrpc", 0, {"f1": 90.0, "acc": 80.0})
    _run(tmp_path, "stsb", 0, {"pearson": 70.0, "spearman": 60.0})
    _run(tmp_path, "wnli", 0, {"acc": 10.0})
    res = aggregate(tmp_path)
    assert res["average"]["median"] == pytest.approx(70.0)  # MRPC acc and STS-B Spearman (official README)
    assert res["average"]["label"].startswith("GLUE-2 (no CoLA, SST-2, QQP, MNLI, QNLI, RTE)")
    table = markdown_table(res, "m")
    assert "Avg. GLUE-2 (no CoLA, SST-2, QQP, MNLI, QNLI, RTE)" in table
    assert "| m median | — | — | 90.00/80.00 | 70.00/60.00 | — | — | — | — | 10.00 | 70.00 |" in table


def test_pick_modes(tmp_path):
    outs = {}
    for seed, acc in enumerate([70.0, 90.0, 80.0, 60.0, 85.0]):
        logits = np.zeros((3, 2), np.float32)
        logits[:, 1] = seed - 1.5  # runs 0 and 1 predict entailment, runs 2-4 not_entailment
        outs[seed] = logits
        _run(tmp_path, "rte", seed, {"acc": acc}, {"test": logits})
    from electra.finetune.results import load_runs

    runs = load_runs(tmp_path, TASKS["rte"])
    name = lambda rs: [r["dir"].rsplit("/", 1)[1] for r in rs]  # noqa: E731
    assert name(choose_runs(runs, TASKS["rte"], parse_pick("best"))) == ["run_1"]
    assert name(choose_runs(runs, TASKS["rte"], parse_pick("median"))) == ["run_2"]
    assert name(choose_runs(runs, TASKS["rte"], parse_pick("ensemble:3"))) == ["run_1", "run_4", "run_2"]
    assert name(choose_runs(runs, TASKS["rte"], parse_pick("3"))) == ["run_3"]
    assert parse_pick("run_3") == Pick("run", run="run_3")
    with pytest.raises(ElectraError, match="no complete run run_9"):
        choose_runs(runs, TASKS["rte"], parse_pick("9"))
    with pytest.raises(ElectraError, match="expected ensemble:K"):
        parse_pick("ensemble:0")
    # ensemble of runs 1, 4, 2: mean of softmax probabilities; logit(entailment)=0, logit(not_entailment)=s-1.5
    files, manifest = build_submission(tmp_path, parse_pick("ensemble:3"))
    p = np.mean([1 / (1 + np.exp(-(s - 1.5))) for s in (1, 4, 2)])
    assert files["RTE.tsv"].splitlines()[1] == "0\t" + ("not_entailment" if p > 0.5 else "entailment")
    assert manifest[0]["runs"] == ["run_1", "run_4", "run_2"]
    files, _ = build_submission(tmp_path, parse_pick("best"))  # run 1: logit 1 - 1.5 < 0 -> entailment
    assert files["RTE.tsv"] == "index\tprediction\n0\tentailment\n1\tentailment\n2\tentailment\n"


def test_sts_submission_clipped_and_zip_written_atomically(tmp_path):
    _run(tmp_path, "stsb", 0, {"pearson": 1.0, "spearman": 1.0}, {"test": np.array([[-0.2], [0.5], [1.4]])})
    files, _ = build_submission(tmp_path, parse_pick("best"))
    assert files["STS-B.tsv"] == "index\tprediction\n0\t0.000\n1\t2.500\n2\t5.000\n"
    zip_path = tmp_path / "sub.zip"
    zip_path.write_bytes(b"old")
    write_zip(zip_path, files)
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.namelist() == ["STS-B.tsv"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
