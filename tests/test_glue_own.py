"""Your own data (electra.finetune.own): file formats, kinds, bad input, the same numbers as the GLUE path, and exports
that `transformers` pipelines load."""

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from glue_fixtures import VOCAB, write_glue, write_micro_model

from electra.api import export, finetune, finetune_own
from electra.errors import ElectraError
from electra.finetune.features import load_split
from electra.finetune.metrics import compute_metrics
from electra.finetune.own import own_task
from electra.finetune.results import load_predictions
from electra.finetune.tasks import OwnFiles
from electra.hub import DatasetSource, parse_dataset

FAST = dict(epochs=2, max_length=32, device="cpu", quiet=True)


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("own")
    return write_micro_model(root)


def _sentences(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(VOCAB[5:40]) for _ in range(rng.randint(3, 8))] for _ in range(n)]


def _write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE)
        w.writerow(header)
        w.writerows(rows)
    return path


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- reading


def test_csv_tsv_and_jsonl_give_the_same_examples(tmp_path):
    rows = [['a, quoted "text"', "pos"], ["plain text", "neg"], ["third one", "pos"]]
    c = _write_csv(tmp_path / "d.csv", ["text", "label"], rows)
    t = tmp_path / "d.tsv"
    t.write_text('text\tlabel\na, quoted "text"\tpos\nplain text\tneg\nthird one\tpos\n', encoding="utf-8")
    j = _write_jsonl(tmp_path / "d.jsonl", [{"text": a, "label": b} for a, b in rows])
    read = []
    for path in (c, t, j):
        task = own_task(OwnFiles(str(path), str(path)))
        assert task.labels == ("neg", "pos") and task.kind == "classification" and task.score == "acc"
        examples = load_split(task, "dev", None).examples
        read.append([(e.text_a, e.text_b, e.label) for e in examples])
    assert (
        read[0]
        == read[1]
        == read[2]
        == [('a, quoted "text"', None, 1), ("plain text", None, 0), ("third one", None, 1)]
    )


def test_integer_labels_sort_numerically_and_given_labels_keep_their_order(tmp_path):
    path = _write_csv(tmp_path / "d.csv", ["text", "label"], [["x y", "10"], ["y z", "2"], ["z x", "1"]])
    assert own_task(OwnFiles(str(path), str(path))).labels == ("1", "2", "10")
    assert own_task(OwnFiles(str(path), str(path)), labels=["10", "2", "1"]).labels == ("10", "2", "1")


def test_pairs_ids_regression_and_multilabel_values(tmp_path):
    path = _write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "q7", "a": "first", "b": "second", "y": 0.5, "tags": ["x", "z"]},
            {"id": "q9", "a": "third", "b": "fourth", "y": 2, "tags": "y,z"},
        ],
    )
    files = OwnFiles(str(path), str(path), str(path), "a", "b", "y", id_column="id")
    reg = own_task(files, "regression")
    assert reg.labels is None and reg.regression_max is None
    dev = load_split(reg, "dev", None).examples
    assert [(e.text_a, e.text_b, e.label) for e in dev] == [("first", "second", 0.5), ("third", "fourth", 2.0)]
    assert [e.index for e in load_split(reg, "test", None).examples] == ["q7", "q9"]
    multi = own_task(OwnFiles(str(path), str(path), None, "a", None, "tags"), "multilabel")
    assert multi.labels == ("x", "y", "z") and multi.num_outputs == 3
    assert [e.label for e in load_split(multi, "dev", None).examples] == [(0, 2), (1, 2)]


def test_metrics_by_kind_against_hand_computed_values(tmp_path):
    path = _write_csv(tmp_path / "d.csv", ["text", "label"], [["a", "x"], ["b", "y"], ["c", "z"]])
    task = own_task(OwnFiles(str(path), str(path)))
    logits = np.eye(3)[[0, 1, 1, 2]]  # predictions x y y z against gold x y z z
    m = compute_metrics(task, logits, np.array([0, 1, 2, 2]))
    # per class F1: x 1, y 2/3 (tp 1, fp 1), z 2/3 (tp 1, fn 1): macro 7/9
    assert m["acc"] == pytest.approx(75.0) and m["macro_f1"] == pytest.approx(100 * 7 / 9)
    multi = own_task(OwnFiles(str(path), str(path)), "multilabel")
    gold = np.array([[1, 0, 0], [1, 1, 0]], np.float32)
    out = np.array([[3.0, -1.0, 2.0], [1.0, -2.0, -1.0]])  # predicted {x, z}, {x}: tp 2, fp 1, fn 1
    m = compute_metrics(multi, out, gold)
    # micro: P = R = 2/3. Per label: x 1.0, y 0 (fn), z 0 (fp): macro 1/3
    assert m["micro_f1"] == pytest.approx(100 * 2 / 3) and m["macro_f1"] == pytest.approx(100 / 3)


def test_hub_sources_are_parsed_and_fail_at_once_offline(tmp_path, monkeypatch):
    assert parse_dataset("hf:imdb", "dev") == DatasetSource("imdb", None, "validation", None)
    assert parse_dataset("hf:glue:sst2@train", "train") == DatasetSource("glue", "sst2", "train", None)
    assert parse_dataset("hf:conll2003#chunk_tags", "test") == DatasetSource("conll2003", None, "test", "chunk_tags")
    with pytest.raises(ElectraError, match="hf:NAME"):
        parse_dataset("hf:", "train")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ElectraError, match="imdb"):
        own_task(OwnFiles("hf:imdb", "hf:imdb"))


# ---------------------------------------------------------------------------------------------- bad input


def _bad(tmp_path: Path, name: str, text: str, **files) -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    with pytest.raises(ElectraError) as err:
        kind = files.pop("kind", "classification")
        task = own_task(OwnFiles(str(files.pop("train", path)), str(files.pop("dev", path)), **files), kind)
        load_split(task, "train", None)
        load_split(task, "dev", None)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "name, text, extra, expected",
    [
        ("cols.csv", "sentence,label\nhi,x\n", {}, "no column 'text'; the columns are ['sentence', 'label']"),
        ("empty.csv", "text,label\n ,x\nb,y\n", {}, "empty.csv:2: empty text in column 'text'"),
        ("unseen.csv", "text,label\na,x\nb,w\n", {"train": "good"}, "unseen.csv:3: label 'w' does not occur"),
        ("reg.csv", "text,label\na,1.5\nb,high\n", {"kind": "regression"}, "reg.csv:3: label 'high' is not a number"),
        ("row.csv", "text,label\na,x,extra\n", {}, "row.csv:2: 3 fields, but the header has 2"),
        ("bad.jsonl", '{"text": "a", "label": "x"}\n[1, 2]\n', {}, "bad.jsonl:2: expected a JSON object"),
        ("broken.jsonl", '{"text": "a", "label": "x"}\n{"text": \n', {}, "broken.jsonl:2: not a JSON object"),
        ("d.xlsx", "x", {}, "unknown format .xlsx; expected .csv, .tsv or .jsonl"),
        ("latin.csv", b"text,label\ncaf\xe9,x\n", {}, "latin.csv is not UTF-8"),
        ("header.csv", "", {}, "header.csv is empty; expected a header row"),
        ("one.csv", "text,label\na,x\nb,x\n", {}, "needs at least two labels"),
        ("nolabel.csv", "text,label\na,x\nb,\nc,y\n", {}, "nolabel.csv:3: empty label in column 'label'"),
        ("nan.csv", "text,label\na,1\nb,nan\n", {"kind": "regression"}, "nan.csv:3: label 'nan' is not a number"),
    ],
)
def test_bad_input_is_one_line_naming_the_file_and_what_was_expected(tmp_path, name, text, extra, expected):
    if extra.get("train") == "good":
        extra["train"] = tmp_path / "good.csv"
        _write_csv(extra["train"], ["text", "label"], [["a b", "x"], ["b c", "y"]])
    assert expected in _bad(tmp_path, name, text, **extra)


def test_a_missing_file_and_a_bad_name_are_clear(tmp_path):
    with pytest.raises(ElectraError, match="--train .*nope.csv: no such file"):
        own_task(OwnFiles(str(tmp_path / "nope.csv"), "x.csv"))
    path = _write_csv(tmp_path / "d.csv", ["text", "label"], [["a", "x"], ["b", "y"]])
    with pytest.raises(ElectraError, match="--name"):
        own_task(OwnFiles(str(path), str(path)), name="../up")


# ---------------------------------------------------------------------------------------------- end to end


def _cue_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Positive when the sentence contains "good": learnable by a micro model in a few epochs."""
    rows = []
    for i, words in enumerate(_sentences(n, seed)):
        if i % 2:
            words[len(words) // 2] = "good"
        rows.append((" ".join(words), "pos" if "good" in words else "neg"))
    return rows


def test_classification_regression_and_multilabel_learn_and_write_test_predictions(tmp_path, micro):
    train, dev = _cue_rows(64, 0), _cue_rows(24, 1)
    tr = _write_csv(tmp_path / "train.csv", ["text", "label"], [list(r) for r in train])
    dv = _write_csv(tmp_path / "dev.csv", ["text", "label"], [list(r) for r in dev])
    te = _write_csv(tmp_path / "test.csv", ["key", "text"], [[f"t{i}", r[0]] for i, r in enumerate(dev[:6])])
    common = dict(train=str(tr), dev=str(dv), **{**FAST, "epochs": 8}, learning_rate=1e-3, batch_size=8)
    res = finetune_own(str(micro), tmp_path / "cls", test=str(te), id_column="key", **common)
    assert res["tasks"]["classification"]["metrics"]["acc"]["median"] >= 90.0
    run = tmp_path / "cls" / "classification" / "run_0"
    with open(run / "predictions_test.csv", newline="") as f:
        rows = list(csv.reader(f))
    dev_pred = load_predictions(run / "predictions_dev.npz")["outputs"].argmax(-1)
    assert rows[0] == ["id", "prediction"] and [r[0] for r in rows[1:]] == [f"t{i}" for i in range(6)]
    assert [r[1] for r in rows[1:]] == [("neg", "pos")[k] for k in dev_pred[:6]]  # test = the first 6 dev texts
    assert "| classification | acc | 1 |" in (tmp_path / "cls" / "results.md").read_text()

    # regression: y = 2 + (contains "good"); multilabel: pos or neg, plus "long" for more than 5 words
    recipe = {k: v for k, v in common.items() if k not in ("train", "dev")}

    def files(prefix: str, label) -> dict[str, str]:
        return {
            role: str(
                _write_csv(tmp_path / f"{prefix}_{role}.csv", ["text", "label"], [[t, label(t, y)] for t, y in rows])
            )
            for role, rows in (("train", train), ("dev", dev))
        }

    regression = files("reg", lambda t, y: str(2 + (y == "pos")))
    r = finetune_own(str(micro), tmp_path / "reg", kind="regression", name="reg", **regression, **recipe)
    assert r["tasks"]["reg"]["metrics"]["spearman"]["median"] > 50.0  # a binary target: ties cap Spearman
    multilabel = files("multi", lambda t, y: y + ("|long" if len(t.split()) > 5 else ""))
    m = finetune_own(
        str(micro), tmp_path / "multi", kind="multilabel", name="multi", label_separator="|", **multilabel, **recipe
    )
    assert m["tasks"]["multi"]["metrics"]["micro_f1"]["median"] > 70.0
    assert set(m["tasks"]["multi"]["metrics"]) == {"micro_f1", "macro_f1"}


def test_glue_files_read_as_plain_tsv_give_the_same_numbers_as_the_glue_path(tmp_path, micro):
    glue = write_glue(tmp_path / "glue", n_train=40, n_dev=16, n_test=4)
    recipe = dict(runs=2, **FAST)
    ref = finetune(str(micro), tmp_path / "g", tasks="sst2,rte", glue_dir=glue, **recipe)
    for task, pair in (("sst2", None), ("rte", "sentence2")):
        folder = {"sst2": "SST-2", "rte": "RTE"}[task]
        text = "sentence" if pair is None else "sentence1"
        mine = finetune_own(
            str(micro),
            tmp_path / f"o_{task}",
            train=str(glue / folder / "train.tsv"),
            dev=str(glue / folder / "dev.tsv"),
            text_column=text,
            pair_column=pair,
            name=task,
            **recipe,
        )
        for stat in ("median", "mean", "min", "max"):
            assert mine["tasks"][task]["metrics"]["acc"][stat] == ref["tasks"][task]["metrics"]["acc"][stat]


# ---------------------------------------------------------------------------------------------- export


def test_a_transformers_head_run_exports_as_a_pipeline_that_predicts_what_electra_predicted(tmp_path, micro):
    from transformers import pipeline

    train, dev = _cue_rows(48, 0), _cue_rows(16, 1)
    pairs = lambda rows: [[t, t.split()[0], lab] for t, lab in rows]  # noqa: E731
    tr = _write_csv(tmp_path / "train.csv", ["a", "b", "label"], pairs(train))
    dv = _write_csv(tmp_path / "dev.csv", ["a", "b", "label"], pairs(dev))
    finetune_own(
        str(micro),
        tmp_path / "sweep",
        train=str(tr),
        dev=str(dv),
        text_column="a",
        pair_column="b",
        head="transformers",
        save_model=True,
        **FAST,
    )
    run = tmp_path / "sweep" / "classification" / "run_0"
    record = export(run, tmp_path / "hf")
    assert record["class"] == "ElectraForSequenceClassification" and record["verified_max_abs_diff"] < 1e-4
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["problem_type"] == "single_label_classification"
    classify = pipeline("text-classification", model=str(tmp_path / "hf"), device="cpu")
    got = [classify({"text": t, "text_pair": t.split()[0]})["label"] for t, _ in dev]
    ours = load_predictions(run / "predictions_dev.npz")["outputs"].argmax(-1)
    assert got == [("neg", "pos")[k] for k in ours]


def test_an_official_head_run_of_your_own_data_exports_its_head_exactly(tmp_path, micro):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, ElectraModel

    train, dev = _cue_rows(32, 0), _cue_rows(8, 1)
    tr = _write_csv(tmp_path / "train.csv", ["text", "label"], [list(r) for r in train])
    dv = _write_csv(tmp_path / "dev.csv", ["text", "label"], [list(r) for r in dev])
    finetune_own(str(micro), tmp_path / "sweep", train=str(tr), dev=str(dv), save_model=True, **FAST)
    run = tmp_path / "sweep" / "classification" / "run_0"
    head = export(run, tmp_path / "hf")
    assert head["labels"] == ["neg", "pos"]
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    encoder = ElectraModel.from_pretrained(str(tmp_path / "hf")).eval()
    weights = load_file(str(tmp_path / "hf" / "classifier.safetensors"))
    batch = tok([t for t, _ in dev], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = encoder(**batch).last_hidden_state[:, 0] @ weights["weight"].T + weights["bias"]
    ours = load_predictions(run / "predictions_dev.npz")["outputs"]
    np.testing.assert_allclose(logits.numpy(), ours, atol=1e-4)


def test_the_command_line_reads_your_files_and_refuses_mixed_or_partial_options(tmp_path, micro, capsys):
    from electra.cli import main

    train, dev = _cue_rows(32, 0), _cue_rows(8, 1)
    tr = _write_jsonl(tmp_path / "train.jsonl", [{"review": t, "stars": y} for t, y in train])
    dv = _write_jsonl(tmp_path / "dev.jsonl", [{"review": t, "stars": y} for t, y in dev])
    te = _write_jsonl(tmp_path / "test.jsonl", [{"id": f"r{i}", "review": t} for i, (t, _) in enumerate(dev)])
    base = ["finetune", "--model", str(micro), "--out", str(tmp_path / "o"), "--quiet", "--max-length", "32"]
    own = ["--train", str(tr), "--dev", str(dv), "--text-column", "review", "--label-column", "stars"]
    assert main([*base, *own, "--test", str(te), "--id-column", "id", "--name", "reviews", "--epochs", "1"]) == 0
    assert "| reviews | acc | 1 |" in capsys.readouterr().out
    assert (tmp_path / "o" / "reviews" / "run_0" / "predictions_test.csv").read_text().startswith("id,prediction\nr0,")
    for extra, message in (
        (["--dev", str(dv)], "--dev needs --train"),
        ([*own, "--tasks", "sst2"], "cannot be combined"),
        (["--train", str(tr)], "--train needs --dev"),
        ([*own, "--text-column", "body"], "no column 'body'; the columns are ['review', 'stars']"),
        ([*own, "--runs", "0"], "--runs must be at least 1, got 0"),
    ):
        assert main([*base[:-3], "--out", str(tmp_path / "x"), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_a_sweep_of_your_own_data_is_aggregated_and_reported_apart_from_glue(tmp_path, micro):
    from electra.api import report
    from electra.finetune.results import aggregate

    rows = [list(r) for r in _cue_rows(16, 0)]
    data = _write_csv(tmp_path / "d.csv", ["sentence", "label"], rows)
    # named like a GLUE task on purpose: it must still not count as SST-2
    finetune_own(
        str(micro), tmp_path / "o", train=str(data), dev=str(data), text_column="sentence", name="sst2", **FAST
    )
    results = aggregate(tmp_path / "o")  # tasks found from the runs' config.json
    assert set(results["tasks"]) == {"sst2"} and results["tasks"]["sst2"]["glue"] is False
    assert results["average"]["tasks"] == [] and set(results["tasks"]["sst2"]["metrics"]) == {"acc", "macro_f1"}
    report([tmp_path / "o"], tmp_path / "rep")
    text = (tmp_path / "rep" / "index.md").read_text()
    assert "GLUE dev results" not in text and "| o | sst2 | macro_f1 | 1 |" in text
