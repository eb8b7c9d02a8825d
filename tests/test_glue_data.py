import os
from pathlib import Path

import numpy as np
import pytest
from glue_fixtures import expected_rows, write_glue, write_vocab

from electra.errors import ElectraError
from electra.finetune import features as glue_data
from electra.finetune.features import (
    Example,
    collate,
    double_unordered,
    featurize,
    load_split,
    read_tsv_split,
    truncate_pair,
)
from electra.finetune.tasks import TASKS, parse_tasks
from electra.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def glue(tmp_path_factory) -> Path:
    return write_glue(tmp_path_factory.mktemp("glue"))


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return load_tokenizer(write_vocab(tmp_path_factory.mktemp("vocab") / "vocab.txt"))


def test_every_task_and_split_reads_with_the_right_rows(glue):
    for (name, split), n in expected_rows().items():
        data = load_split(TASKS[name], split, glue)
        assert data is not None and len(data.examples) == n, (name, split)
        task = TASKS[name]
        if task.split(split).labelled:
            assert all(e.label is not None for e in data.examples)
            if not task.is_regression:
                assert {e.label for e in data.examples} <= set(range(len(task.labels)))
        else:
            assert [e.index for e in data.examples] == [str(i) for i in range(n)]
        assert all(e.text_a for e in data.examples)
        assert all((e.text_b is not None) == (task.text_b is not None) for e in data.examples)


def test_per_task_quirks(glue):
    cola = load_split(TASKS["cola"], "train", glue)
    first = (glue / "CoLA/train.tsv").read_text().splitlines()[0].split("\t")
    assert cola.examples[0].text_a == first[3] and cola.examples[0].label == int(first[1])  # no header row lost
    mrpc = load_split(TASKS["mrpc"], "dev", glue)  # header begins with a BOM: "Quality" must still be found
    assert (glue / "MRPC/dev.tsv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert mrpc.examples[0].label == int((glue / "MRPC/dev.tsv").read_text().splitlines()[1].split("\t")[0])
    qqp = load_split(TASKS["qqp"], "train", glue)
    assert qqp.skipped == 1 and len(qqp.examples) == 48
    stsb = load_split(TASKS["stsb"], "dev", glue)
    assert all(isinstance(e.label, float) for e in stsb.examples)
    assert stsb.examples[0].label == stsb.examples[0].text_b.split().count("same")
    mnli = load_split(TASKS["mnli"], "dev", glue)
    cue = {"no": "contradiction", "yes": "entailment", "maybe": "neutral"}
    for e in mnli.examples:
        word = next(w for w in e.text_b.split() if w in cue)
        assert TASKS["mnli"].labels[e.label] == cue[word]
    assert load_split(TASKS["mnli"], "ax", glue).source.endswith("diagnostic/diagnostic.tsv")
    assert load_split(TASKS["qqp"], "test", glue).examples[0].index == "0"  # QQP test uses `id`


def test_absent_files_give_none(tmp_path):
    assert load_split(TASKS["qqp"], "train", tmp_path) is None


def _rewrite(src: Path, dst: Path, line: int, new: str) -> Path:
    lines = src.read_text(encoding="utf-8").split("\n")
    lines[line - 1] = new
    dst.write_text("\n".join(lines), encoding="utf-8")
    return dst


def test_malformed_row_is_an_error_with_file_and_line(glue, tmp_path):
    path = _rewrite(glue / "RTE/train.tsv", tmp_path / "train.tsv", 5, "4\tonly two fields")
    with pytest.raises(ElectraError, match=r"train\.tsv:5: malformed row with 2 tab-separated fields, expected 4"):
        read_tsv_split(TASKS["rte"], TASKS["rte"].split("train"), path)


def test_label_outside_the_set_is_an_error(glue, tmp_path):
    path = _rewrite(glue / "RTE/dev.tsv", tmp_path / "dev.tsv", 3, "1\ta b\tc d\tcontradiction")
    with pytest.raises(ElectraError, match=r"dev\.tsv:3: label 'contradiction' is not one of RTE's labels"):
        read_tsv_split(TASKS["rte"], TASKS["rte"].split("dev"), path)
    path = _rewrite(glue / "CoLA/dev.tsv", tmp_path / "cola.tsv", 2, "gj04\t2\t\tsome sentence")
    with pytest.raises(ElectraError, match=r"cola\.tsv:2: label '2'"):
        read_tsv_split(TASKS["cola"], TASKS["cola"].split("dev"), path)
    path = _rewrite(glue / "STS-B/dev.tsv", tmp_path / "sts.tsv", 2, "\t".join(["x"] * 10))
    with pytest.raises(ElectraError, match=r"sts\.tsv:2: STS-B score 'x' is not a number"):
        read_tsv_split(TASKS["stsb"], TASKS["stsb"].split("dev"), path)


def test_unexpected_test_layout_is_an_error(glue, tmp_path):
    path = _rewrite(glue / "RTE/test.tsv", tmp_path / "test.tsv", 1, "index\tpremise\thypothesis")
    with pytest.raises(ElectraError, match=r"test\.tsv: unexpected column layout for RTE test: no column 'sentence1'"):
        read_tsv_split(TASKS["rte"], TASKS["rte"].split("test"), path)


def test_hub_reader_maps_label_names(monkeypatch):
    import datasets

    def fake_load(name, config, split):
        assert name == "nyu-mll/glue"
        if config == "mnli":
            feats = datasets.Features(
                {
                    "premise": datasets.Value("string"),
                    "hypothesis": datasets.Value("string"),
                    "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
                    "idx": datasets.Value("int32"),
                }
            )
            return datasets.Dataset.from_dict(
                {"premise": ["a", "b"], "hypothesis": ["c", "d"], "label": [0, 2], "idx": [0, 1]}, features=feats
            )
        feats = datasets.Features(
            {
                "sentence": datasets.Value("string"),
                "idx": datasets.Value("int32"),
                "label": datasets.ClassLabel(names=["unacceptable", "acceptable"]),
            }
        )
        return datasets.Dataset.from_dict({"sentence": ["x", "y"], "label": [1, 0], "idx": [7, 8]}, features=feats)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    mnli = load_split(TASKS["mnli"], "dev", None)
    assert [TASKS["mnli"].labels[e.label] for e in mnli.examples] == ["entailment", "contradiction"]
    cola = load_split(TASKS["cola"], "train", None)
    assert [e.label for e in cola.examples] == [1, 0] and [e.index for e in cola.examples] == ["7", "8"]


def test_hub_unreachable_is_a_notice_not_a_crash(monkeypatch, capsys):
    import datasets

    def fail(*a, **k):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", fail)
    assert glue_data.read_hub_split(TASKS["rte"], TASKS["rte"].split("train")) is None
    assert "offline" in capsys.readouterr().err


def test_truncate_pair_pops_from_the_longer():
    a, b = truncate_pair(list(range(6)), list(range(10, 13)), 6)
    assert a == [0, 1, 2] and b == [10, 11, 12]
    a, b = truncate_pair([1, 2, 3], [4, 5, 6], 4)  # tie: pop from b
    assert a == [1, 2] and b == [4, 5]
    a, b = truncate_pair([1], [2, 3, 4, 5, 6], 3)
    assert a == [1] and b == [2, 3]


def test_featurize_layout_types_and_truncation(tok):
    task = TASKS["rte"]
    ex = [Example("0", "the cat sat", "a dog ran on a mat", 1), Example("1", "red " * 50, "blue " * 50, 0)]
    f = featurize(task, ex, tok, max_length=16)
    cls, sep = tok.cls_id, tok.sep_id
    a, b = tok.encode("the cat sat"), tok.encode("a dog ran on a mat")
    assert f.input_ids[0] == [cls, *a, sep, *b, sep]
    assert f.token_type_ids[0] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    assert len(f.input_ids[1]) == 16 and f.token_type_ids[1].count(1) == 7  # 13 tokens: a keeps 7, b 6 (+ [SEP])
    assert f.labels.tolist() == [1, 0]
    single = featurize(TASKS["sst2"], [Example("0", "good " * 40, None, 1)], tok, max_length=10)
    assert single.input_ids[0] == [cls] + [tok.encode("good")[0]] * 8 + [sep]
    sts = featurize(TASKS["stsb"], [Example("0", "a", "b", 3.5)], tok)
    assert sts.labels.dtype == np.float32 and sts.labels[0] == pytest.approx(0.7)


def test_double_unordered_appends_swapped_copies():
    ex = [Example("0", "a", "b", 1), Example("1", "c", "d", 0)]
    out = double_unordered(ex)
    assert [(e.text_a, e.text_b, e.label) for e in out] == [("a", "b", 1), ("c", "d", 0), ("b", "a", 1), ("d", "c", 0)]


def test_collate_pads_and_masks(tok):
    f = featurize(TASKS["sst2"], [Example("0", "the cat", None, 1), Example("1", "the", None, 0)], tok)
    batch = collate(f, [0, 1], pad_id=tok.pad_id)
    assert batch["input_ids"].shape == (2, 4)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["input_ids"][1, 3].item() == tok.pad_id and batch["labels"].tolist() == [1, 0]


def test_parse_tasks():
    assert [t.name for t in parse_tasks("all")] == list(TASKS)
    assert [t.name for t in parse_tasks("SST-2, sts-b,ax")] == ["sst2", "stsb", "mnli"]
    with pytest.raises(ElectraError, match="unknown GLUE task 'foo'"):
        parse_tasks("cola,foo")


SHARED = Path(os.environ.get("ELECTRA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared/data"))


@pytest.mark.skipif(not (SHARED / "glue").is_dir(), reason="shared GLUE data not present")
def test_real_glue_files_read_with_documented_counts():
    counts = {
        ("cola", "train"): 8551,
        ("cola", "dev"): 1043,
        ("cola", "test"): 1063,
        ("sst2", "dev"): 872,
        ("mrpc", "train"): 3668,
        ("mrpc", "test"): 1725,
        ("stsb", "dev"): 1500,
        ("stsb", "test"): 1379,
        ("qnli", "dev"): 5463,
        ("rte", "train"): 2490,
        ("rte", "test"): 3000,
        ("wnli", "dev"): 71,
    }
    for (name, split), n in counts.items():
        assert len(load_split(TASKS[name], split, SHARED / "glue").examples) == n
    assert load_split(TASKS["qnli"], "train", SHARED / "glue") is None


def test_an_empty_second_text_is_one_segment_as_in_the_official_code(tmp_path):
    """(classification_tasks.py: `if example.text_b:` -- an empty string is no second segment)"""
    from glue_fixtures import write_vocab

    from electra.finetune.features import encode_texts
    from electra.tokenizer import load_tokenizer

    tok = load_tokenizer(write_vocab(tmp_path / "vocab.txt"))
    ids, types = encode_texts(tok, ["the cat", "the cat"], ["", None])
    assert ids[0] == ids[1] == [tok.cls_id, *tok.encode("the cat"), tok.sep_id]
    assert types[0] == types[1] == [0, 0, 0, 0]
