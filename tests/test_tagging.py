"""Token classification: reading CoNLL files, first-piece alignment, truncation, metrics, errors, finetuning end to
end on a micro model, resume, and the transformers export (pipeline parity)."""

import json
import random
from pathlib import Path

import pytest
import torch

from electra import hub
from electra.config import ModelConfig
from electra.errors import ElectraError
from electra.finetune.tagging import export_tagging_run, finetune_tagging
from electra.finetune.tagging import finetune as tagging_finetune
from electra.finetune.tagging.data import (
    IGNORE,
    TOKEN_TYPE,
    check_tags,
    collate,
    featurize,
    label_list,
    load_split,
    read_conll,
    span_scheme,
)
from electra.finetune.tagging.model import TokenTagger, span_scores, tagging_loss, tagging_metrics, word_accuracy
from electra.hf import save_hf
from electra.model import Discriminator, init_weights
from electra.tokenizer import load_tokenizer

# tags follow word identity: a chunking-like BIO task a micro model learns in a few epochs
TAG_OF = {
    "the": "B-NP",
    "a": "B-NP",
    "cat": "I-NP",
    "dog": "I-NP",
    "mat": "I-NP",
    "sat": "B-VP",
    "ran": "B-VP",
    "walking": "B-VP",  # two pieces: walk ##ing
    "on": "B-PP",
    "quickly": "O",
    ".": "O",
}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(w for w in TAG_OF if w != "walking"), "walk", "##ing"]
MICRO = dict(
    vocab_size=len(VOCAB),
    embedding_size=16,
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
)
FAST = dict(max_length=32, epochs=4, learning_rate=3e-3, layerwise_lr_decay=1.0)


def write_tagged(path: Path, n: int, seed: int, columns: bool = True) -> Path:
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- -X- O", ""]
    for _ in range(n):
        for w in (rng.choice(list(TAG_OF)) for _ in range(rng.randint(2, 7))):
            lines.append(f"{w} NN {TAG_OF[w]}" if columns else w)
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tagging")
    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tok = load_tokenizer(root / "vocab.txt")
    torch.manual_seed(0)
    disc = Discriminator(ModelConfig(**MICRO))
    init_weights(disc)
    save_hf(disc, root / "micro", tokenizer=tok)
    write_tagged(root / "train.txt", 120, 0)
    write_tagged(root / "dev.txt", 24, 1)
    write_tagged(root / "test.txt", 8, 2, columns=False)
    return root


@pytest.fixture(scope="module")
def swept(micro) -> Path:
    out = micro / "sweep"
    finetune_tagging(
        str(micro / "micro"),
        out,
        train=str(micro / "train.txt"),
        dev=str(micro / "dev.txt"),
        test=str(micro / "test.txt"),
        device="cpu",
        quiet=True,
        save_model=True,
        **FAST,
    )
    return out


def _write(tmp_path: Path, text: str, name: str = "f.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------- reading


def test_reading_columns_blank_lines_docstart_and_tag_column(tmp_path):
    text = "-DOCSTART- -X- -X- O\n\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n\nPeter NNP B-NP B-PER\n\n"
    path = _write(tmp_path, text)
    last = read_conll(path)  # tag = last column
    assert [s.words for s in last.sentences] == [["EU", "rejects"], ["Peter"]]
    assert [s.tags for s in last.sentences] == [["B-ORG", "O"], ["B-PER"]]
    assert last.sentences[0].where == [f"{path}:4", f"{path}:5"]
    chunks = read_conll(path, tag_column=2)
    assert [s.tags for s in chunks.sentences] == [["B-NP", "B-VP"], ["B-NP"]]
    pos = read_conll(path, token_column=1, tag_column=-2)  # a negative column counts from the end
    assert pos.sentences[0].words == ["NNP", "VBZ"] and pos.sentences[0].tags == ["B-NP", "B-VP"]
    # labels: the train tags, sorted; the span scheme is read from them
    assert label_list(last) == ["B-ORG", "B-PER", "O"] and span_scheme(label_list(last)) == "BIO"
    assert span_scheme(["O", "S-LOC", "B-PER", "E-PER"]) == "BIOES" and span_scheme(["NN", "VB"]) is None


def test_test_file_may_lack_tags_but_not_mix(tmp_path):
    plain = load_split(str(_write(tmp_path, "a\nb\n\nc\n")), "test")
    assert not plain.labelled and [s.words for s in plain.sentences] == [["a", "b"], ["c"]]
    assert load_split(str(_write(tmp_path, "a X\n", "t.txt")), "test").labelled
    with pytest.raises(ElectraError, match=r"m\.txt:2: 1 column\(s\) found .*earlier lines have tags"):
        load_split(str(_write(tmp_path, "a X\nb\n", "m.txt")), "test")


def test_first_piece_alignment_specials_ignored_and_word_positions(micro):
    tok = load_tokenizer(micro / "vocab.txt")
    split = read_conll(_write(micro, "the X B-NP\nwalking X B-VP\ncat X I-NP\n", "align.txt"))
    labels = ["B-NP", "B-VP", "I-NP"]
    f = featurize(split, tok, {t: i for i, t in enumerate(labels)}, 16)
    walk, ing = tok.encode("walking")
    assert f.input_ids[0] == [tok.cls_id, *tok.encode("the"), walk, ing, *tok.encode("cat"), tok.sep_id]
    assert f.labels[0] == [IGNORE, 0, 1, IGNORE, 2, IGNORE]  # [CLS], the, walk, ##ing, cat, [SEP]
    assert f.word_positions[0] == [1, 2, 4]
    b = collate(f, [0], tok.pad_id)
    assert b["token_type_ids"].tolist() == [[TOKEN_TYPE] * 6]  # official tagging: segment id 1 everywhere


def test_truncation_keeps_whole_words_and_leaves_the_rest_unpredicted(micro):
    tok = load_tokenizer(micro / "vocab.txt")
    split = read_conll(_write(micro, "the X B-NP\ncat X I-NP\nwalking X B-VP\non X B-PP\n", "long.txt"))
    lab = {t: i for i, t in enumerate(["B-NP", "B-PP", "B-VP", "I-NP"])}
    # length 5 = [CLS] the cat [SEP] + 1: "walking" (2 pieces) does not fit, so neither it nor "on" is featurized
    f = featurize(split, tok, lab, 5)
    assert len(f.input_ids[0]) == 4 and f.input_ids[0][-1] == tok.sep_id
    assert f.word_positions[0] == [1, 2, -1, -1] and f.truncated_words == 2
    assert featurize(split, tok, lab, 7).word_positions[0] == [1, 2, 3, 5]  # exactly fits
    # the cut words are not scored (as the official labels_mask): a 2-word prediction of a 4-word sentence
    gold = [["B-NP", "I-NP", "B-VP", "B-PP"]]
    assert tagging_metrics(gold, [["B-NP", "I-NP"]], "BIO") == pytest.approx(
        {"accuracy": 100.0, "precision": 100.0, "recall": 100.0, "f1": 100.0}
    )


def test_hf_source_asks_the_hub_and_a_local_path_never_does(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "offline", lambda: False)
    monkeypatch.setattr(hub, "reachable", lambda timeout=3.0: False)
    with pytest.raises(ElectraError, match="dataset 'conll2003' is not a local path"):
        load_split("hf:conll2003", "dev")

    def no_hub(*a, **k):
        raise AssertionError("a local path reached the hub")

    monkeypatch.setattr(hub, "require", no_hub)
    with pytest.raises(ElectraError, match="does not exist"):
        load_split(str(tmp_path / "org/data"), "train")


def test_hf_dataset_class_label_tags(monkeypatch):
    datasets = pytest.importorskip("datasets")
    feats = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
        }
    )
    ds = datasets.Dataset.from_dict({"tokens": [["Ann", "Lee", "ran"]], "ner_tags": [[1, 2, 0]]}, features=feats)
    seen = {}
    monkeypatch.setattr(hub, "require", lambda name, what: seen.setdefault("require", (name, what)))
    load = lambda name, config, split: seen.setdefault("load", (name, config, split)) and ds  # noqa: E731
    monkeypatch.setattr(datasets, "load_dataset", load)
    split = load_split("hf:someone/ner", "dev")
    assert seen == {"require": ("someone/ner", "dataset"), "load": ("someone/ner", None, "validation")}
    assert split.sentences[0].words == ["Ann", "Lee", "ran"] and split.sentences[0].tags == ["B-PER", "I-PER", "O"]


# ---------------------------------------------------------------------------------------------- metrics and loss


def test_word_accuracy_and_span_f1_on_a_wrong_boundary():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]  # PER span cut short: one word of six wrong
    assert word_accuracy(gold, pred) == pytest.approx(500 / 6)
    # spans: gold {PER 0-1, LOC, ORG}, predicted {PER 0-0, LOC, ORG}: 2 of 3 right both ways
    assert span_scores(gold, pred) == pytest.approx({"precision": 200 / 3, "recall": 200 / 3, "f1": 200 / 3})
    # a wrong type with right boundaries is also a miss; BIOES reads S-/E-
    assert span_scores([["S-LOC", "B-PER", "E-PER"]], [["S-ORG", "B-PER", "E-PER"]])["f1"] == pytest.approx(50.0)
    assert tagging_metrics([["NN", "VB"]], [["NN", "NN"]], None) == {"accuracy": 50.0}


def test_loss_counts_first_pieces_only_sum_or_mean():
    logits = torch.randn(2, 5, 3)
    labels = torch.tensor([[IGNORE, 0, IGNORE, 2, IGNORE], [IGNORE, 1, IGNORE, IGNORE, IGNORE]])
    total, n = tagging_loss(logits, labels, "sum")
    want = sum(-torch.log_softmax(logits[b, p], -1)[labels[b, p]] for b, p in [(0, 1), (0, 3), (1, 1)])
    assert n == 3 and total.item() == pytest.approx(want.item(), rel=1e-5)
    assert tagging_loss(logits, labels, "mean")[0].item() == pytest.approx(want.item() / 3, rel=1e-5)
    logits[0, 2] += 100.0  # an ignored position does not move the loss
    assert tagging_loss(logits, labels, "sum")[0].item() == pytest.approx(want.item(), rel=1e-5)


def test_head_is_transformers_token_classification_head():
    from transformers import ElectraForTokenClassification

    from electra.finetune.tagging.export import to_hf_tagger

    torch.manual_seed(1)
    model = TokenTagger(ModelConfig(**MICRO), 4).eval()
    init_weights(model.electra)
    hf = to_hf_tagger(model, ["a", "b", "c", "d"], token_type=0)
    assert isinstance(hf, ElectraForTokenClassification) and hf.config.id2label == {0: "a", 1: "b", 2: "c", 3: "d"}
    ids = torch.randint(5, len(VOCAB), (2, 7))
    torch.testing.assert_close(model(ids), hf(input_ids=ids).logits)


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "text, where, match",
    [
        ("the X B-NP\nlonely\n", "train", r"f\.txt:2: 1 column\(s\) found \('lonely'\); expected the token"),
        ("", "train", r"f\.txt has no sentences"),
        ("-DOCSTART- -X- O\n\n\n", "dev", r"f\.txt has no sentences"),
        ("the X B-NP\n\ncat X B-XX\n", "dev", r"f\.txt:3: tag 'B-XX' does not occur in the train set"),
    ],
)
def test_bad_input_is_one_line_naming_file_and_line(tmp_path, text, where, match):
    train = read_conll(_write(tmp_path, "the X B-NP\ncat X I-NP\n", "train.txt"))
    with pytest.raises(ElectraError, match=match) as err:
        check_tags(load_split(str(_write(tmp_path, text)), where), label_list(train))
    assert "\n" not in str(err.value)


def test_missing_or_binary_file_and_bad_column(tmp_path):
    with pytest.raises(ElectraError, match="nope.txt does not exist"):
        read_conll(tmp_path / "nope.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ElectraError, match="is not UTF-8"):
        read_conll(tmp_path / "bin.txt")
    with pytest.raises(ElectraError, match=r"f\.txt:1: 2 column\(s\) found \('a B'\); expected the token in column 0 "):
        read_conll(_write(tmp_path, "a B\n"), tag_column=3)


def test_max_length_beyond_positions_and_unknown_option_are_refused(micro, tmp_path):
    args = dict(train=str(micro / "train.txt"), dev=str(micro / "dev.txt"), device="cpu", quiet=True)
    with pytest.raises(ElectraError, match="max_length 256 exceeds the model's 64 positions"):
        finetune_tagging(str(micro / "micro"), tmp_path / "a", **args)  # the tagging default, 256
    with pytest.raises(ElectraError, match="unknown config key 'learning_rat'"):
        finetune_tagging(str(micro / "micro"), tmp_path / "b", learning_rat=1e-3, **args)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # a failed start leaves nothing


# ---------------------------------------------------------------------------------------------- end to end


def test_finetuning_learns_word_identity_tags_and_writes_the_run(swept, micro):
    results = json.loads((swept / "results.json").read_text())
    assert results["median"]["accuracy"] >= 95.0 and results["median"]["f1"] >= 90.0
    run = swept / "tagging" / "run_0"
    config = json.loads((run / "config.json").read_text())
    assert config["labels"] == ["B-NP", "B-PP", "B-VP", "I-NP", "O"] and config["scheme"] == "BIO"
    assert config["finetune"]["max_length"] == 32 and config["finetune"]["head_dropout"] == 0.0
    assert config["finetune"]["epochs"] == 4 and config["token_type_id"] == TOKEN_TYPE
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["score_name"] == "f1" and "test_accuracy" not in metrics["metrics"]  # the test file has no tags
    losses = metrics["train_loss_per_epoch"]
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0]
    # predictions: token gold predicted on dev, token predicted on the untagged test file, sentence by sentence
    dev = read_conll(micro / "dev.txt")
    rows = [line.split() for line in (run / "predictions_dev.txt").read_text().split("\n\n")[0].splitlines()]
    assert [r[:2] for r in rows] == [list(p) for p in zip(dev.sentences[0].words, dev.sentences[0].tags, strict=True)]
    test_blocks = (run / "predictions_test.txt").read_text().strip().split("\n\n")
    assert len(test_blocks) == 8 and all(len(line.split()) == 2 for line in test_blocks[0].splitlines())
    assert (run / "model.safetensors").is_file() and (run / "tokenizer" / "vocab.txt").is_file()


def test_resumed_sweep_skips_complete_runs(swept, micro, monkeypatch):
    first = (swept / "tagging" / "run_0" / "metrics.json").read_text()
    trained = []
    real = tagging_finetune.train_tagger
    monkeypatch.setattr(
        tagging_finetune,
        "train_tagger",
        lambda data, enc, mc, cfg, seed, *a: trained.append(seed) or real(data, enc, mc, cfg, seed, *a),
    )
    args = dict(train=str(micro / "train.txt"), dev=str(micro / "dev.txt"), test=str(micro / "test.txt"))
    results = finetune_tagging(str(micro / "micro"), swept, runs=2, device="cpu", quiet=True, **args, **FAST)
    assert trained == [1] and [r["seed"] for r in results["runs"]] == [0, 1]
    assert (swept / "tagging" / "run_0" / "metrics.json").read_text() == first
    assert finetune_tagging(str(micro / "micro"), swept, runs=2, device="cpu", quiet=True, **args, **FAST) == results
    assert trained == [1]


def test_export_loads_in_the_pipeline_with_the_same_word_labels(swept, micro, tmp_path):
    from transformers import ElectraForTokenClassification, pipeline

    record = export_tagging_run(swept / "tagging" / "run_0", tmp_path / "export")
    assert record["verified_max_abs_diff"] <= 1e-4
    hf = ElectraForTokenClassification.from_pretrained(tmp_path / "export")
    assert hf.config.id2label[0] == "B-NP" and hf.config.label2id["O"] == 4
    tagger = pipeline("token-classification", model=str(tmp_path / "export"), aggregation_strategy="none", device=-1)
    text = (swept / "tagging" / "run_0" / "predictions_dev.txt").read_text().strip()
    for block in text.split("\n\n"):
        words, ours = zip(*((r.split()[0], r.split()[-1]) for r in block.splitlines()), strict=True)
        sentence, starts = "", []
        for w in words:
            starts.append(len(sentence) + (1 if sentence else 0))
            sentence = f"{sentence} {w}" if sentence else w
        by_start = {e["start"]: e["entity"] for e in tagger(sentence, ignore_labels=[])}  # keep "O"
        assert [by_start[s] for s in starts] == list(ours)  # the first piece of each word
    with pytest.raises(ElectraError, match="already exists and is not empty"):
        export_tagging_run(swept / "tagging" / "run_0", tmp_path / "export")


def test_recipe_defaults_by_model_size():
    from electra.config import FinetuneConfig

    small = tagging_finetune.resolve(FinetuneConfig(), ModelConfig(**MICRO))
    assert (small.learning_rate, small.layerwise_lr_decay, small.epochs) == (3e-4, 0.8, 3)
    large = ModelConfig(**{**MICRO, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16})
    big = tagging_finetune.resolve(FinetuneConfig(epochs=2, learning_rate=1e-5), large)
    assert (big.learning_rate, big.layerwise_lr_decay, big.epochs) == (1e-5, 0.9, 2)


def test_the_command_line_finetunes_tagging_files_and_exports_the_run(micro, tmp_path, capsys):
    from electra.cli import main

    out = tmp_path / "cli"
    argv = ["finetune", "--model", str(micro / "micro"), "--out", str(out), "--kind", "tagging"]
    argv += ["--train", str(micro / "train.txt"), "--dev", str(micro / "dev.txt"), "--save-model", "--quiet"]
    argv += ["--max-length", "32", "--epochs", "4", "--learning-rate", "3e-3", "--layerwise-lr-decay", "1.0"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] >= 95.0  # the medians over runs
    assert main(["export", str(out / "tagging" / "run_0"), "--out", str(tmp_path / "hf")]) == 0
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["ElectraForTokenClassification"] and "B-NP" in config["label2id"]


def test_predicted_tags_do_not_depend_on_batching(micro):
    """Evaluation batches rows shortest first and maps them back: the same tags as one sentence at a time."""
    from electra.config import FinetuneConfig
    from electra.finetune.tagging.model import build_tagger

    tok = load_tokenizer(micro / "vocab.txt")
    labels = sorted(set(TAG_OF.values()))
    split = read_conll(micro / "dev.txt")
    feats = featurize(split, tok, {t: i for i, t in enumerate(labels)}, 32)
    assert [len(q) for q in feats.input_ids] != sorted(len(q) for q in feats.input_ids)
    torch.manual_seed(0)
    model = build_tagger(None, ModelConfig(**MICRO), len(labels), 0.1, init_seed=0)
    cpu = torch.device("cpu")
    one = tagging_finetune.predict_tags(model, feats, labels, cpu, FinetuneConfig(eval_batch_size=1), tok.pad_id)
    many = tagging_finetune.predict_tags(model, feats, labels, cpu, FinetuneConfig(eval_batch_size=5), tok.pad_id)
    assert many == one and len(one) == len(split.sentences) and len(set(map(len, one))) > 1
