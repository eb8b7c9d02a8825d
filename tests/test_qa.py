"""SQuAD question answering (electra.finetune.qa): features, post-processing, the official metrics, bad input,
end to end."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from electra.config import ModelConfig
from electra.errors import ElectraError
from electra.finetune.qa import export_qa_run, finetune_squad
from electra.finetune.qa.data import featurize, load_squad, max_context_flags, split_context
from electra.finetune.qa.evaluate import (
    exact_v1,
    f1_v1,
    f1_v2,
    find_best_thresh,
    normalize_answer,
    squad_v1,
    squad_v2,
)
from electra.finetune.qa.model import HeadOptions, QuestionAnswerer
from electra.finetune.qa.postprocess import apply_null_threshold, final_text, predict_answers
from electra.hf import save_hf
from electra.model import Discriminator, init_weights
from electra.tokenizer import load_tokenizer

NAMES = ["alice", "bob", "carol", "dave", "eve"]
PLACES = ["park", "house", "school", "river", "market"]
VERBS = ["walked", "ran", "swam", "drove"]
OTHER = "the a to in on who where what did go and mat cat sat smith steve born was 1895 1943 w0 w1 w2 w3 w4 w5 w6 w7"
WORDS = NAMES + PLACES + VERBS + OTHER.split() + [f"d{i}" for i in range(40)]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, ".", "?", ",", "'", "(", ")", "-", "s", "##s"]
MICRO = dict(
    vocab_size=len(VOCAB),
    embedding_size=16,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return load_tokenizer(path)


def squad_file(path: Path, paragraphs: list[dict], version: str = "1.1") -> Path:
    path.write_text(json.dumps({"version": version, "data": [{"title": "t", "paragraphs": paragraphs}]}))
    return path


def qa(qid: str, question: str, context: str, answer: str | None, occurrence: int = 0, **extra) -> dict:
    if answer is None:
        return {"id": qid, "question": question, "answers": [], **extra}
    start = [m.start() for m in re.finditer(re.escape(answer), context)][occurrence]
    return {"id": qid, "question": question, "answers": [{"text": answer, "answer_start": start}], **extra}


# ---------------------------------------------------------------------------------------------- features


def test_split_context_maps_characters_to_whitespace_words():
    words, char_to_word = split_context(" Alice  ran\u202fto the\tpark.")
    assert words == ["Alice", "ran", "to", "the", "park."]
    assert char_to_word[:4] == [-1, 0, 0, 0] and char_to_word[7] == 0 and char_to_word[8] == 1
    assert char_to_word[11] == 1 and char_to_word[12] == 2  # U+202F is whitespace, as in the official code


def test_answer_across_a_doc_stride_boundary(tmp_path, tok):
    context = " ".join(f"d{i}" for i in range(20))  # one piece per word
    f = squad_file(tmp_path / "t.json", [{"context": context, "qas": [qa("q", "who ran", context, "d10 d11")]}])
    ex = load_squad(f, "1.1", "train").examples
    # query 2 pieces: 16 - 2 - 3 = 11 doc pieces per span, spans start at 0, 4, 8, 12
    feats = featurize(ex, tok, max_length=16, max_query_length=64, doc_stride=4, training=True)
    assert [(x.span_index, len(x.token_to_orig_map)) for x in feats] == [(0, 11), (1, 11), (2, 11), (3, 8)]
    offset = 4  # [CLS] who ran [SEP]
    # span 0 (pieces 0..10) cuts the answer (pieces 10..11): label [CLS]; spans 1 and 2 hold it entirely
    assert (feats[0].start_position, feats[0].end_position) == (0, 0)
    assert (feats[1].start_position, feats[1].end_position) == (10 - 4 + offset, 11 - 4 + offset)
    assert (feats[2].start_position, feats[2].end_position) == (10 - 8 + offset, 11 - 8 + offset)
    assert (feats[3].start_position, feats[3].end_position) == (0, 0)
    # piece 10: min(left, right) + 0.01 * length is 0.11 in span 0, 4.11 in span 1, 2.11 in span 2
    owner = {x.span_index: x.token_is_max_context[10 - 4 * x.span_index + offset] for x in feats[:3]}
    assert owner == {0: False, 1: True, 2: False}
    # every piece has exactly one max-context span
    spans = [(0, 11), (4, 11), (8, 11), (12, 8)]
    flags = {p: 0 for p in range(20)}
    for s, (start, _) in enumerate(spans):
        for i, flag in enumerate(max_context_flags(spans, s)):
            flags[start + i] += flag
    assert set(flags.values()) == {1}
    assert [feats[3].token_to_orig_map[offset + i] for i in range(8)] == list(range(12, 20))


def test_no_answer_question_and_query_truncation(tmp_path, tok):
    context = "alice ran to the park ."
    question = "who ran to the park and who swam in the river"
    f = squad_file(
        tmp_path / "t.json",
        [{"context": context, "qas": [qa("q", question, context, None, is_impossible=True)]}],
        "2.0",
    )
    (ex,) = load_squad(f, "2.0", "train").examples
    assert ex.is_impossible and ex.start_word == -1
    (feat,) = featurize([ex], tok, max_length=32, max_query_length=3, training=True)
    assert (feat.start_position, feat.end_position, feat.is_impossible) == (0, 0, True)
    assert feat.input_ids[:5] == [tok.cls_id, *tok.encode("who ran to"), tok.sep_id]
    assert feat.token_type_ids == [0] * 5 + [1] * 7  # 6 doc pieces and the last [SEP]
    assert feat.input_ids[-1] == tok.sep_id and min(feat.token_to_orig_map) == 5


def test_token_to_orig_map_and_improved_answer_span(tmp_path, tok):
    context = "Steve Smith's cats, born (1895-1943)."
    qas = [qa("q1", "who was born", context, "1895"), qa("q2", "what", context, "cats")]
    f = squad_file(tmp_path / "t.json", [{"context": context, "qas": qas}])
    ex1, ex2 = load_squad(f, "1.1", "train").examples
    assert ex1.doc_tokens == ["Steve", "Smith's", "cats,", "born", "(1895-1943)."]
    assert (ex1.start_word, ex1.end_word) == (4, 4)
    f1, f2 = featurize([ex1, ex2], tok, max_length=40, training=True)
    pieces = tok.convert_ids_to_tokens(f1.input_ids)
    doc = {p: (pieces[p], f1.token_to_orig_map[p]) for p in sorted(f1.token_to_orig_map)}
    assert list(doc.values()) == [
        ("steve", 0), ("smith", 1), ("'", 1), ("s", 1), ("cat", 2), ("##s", 2), (",", 2), ("born", 3),
        ("(", 4), ("1895", 4), ("-", 4), ("1943", 4), (")", 4), (".", 4),
    ]  # fmt: skip
    # the word "(1895-1943)." is narrowed to the piece "1895"
    assert pieces[f1.start_position] == pieces[f1.end_position] == "1895"
    pieces2 = tok.convert_ids_to_tokens(f2.input_ids)  # (a shorter question: other positions)
    assert pieces2[f2.start_position : f2.end_position + 1] == ["cat", "##s"]


# ---------------------------------------------------------------------------------------------- post-processing


def _one_feature(tmp_path, tok, context="Alice ran to the Park. Bob swam."):
    f = squad_file(tmp_path / "d.json", [{"context": context, "qas": [qa("q", "who ran", context, "Alice")]}])
    examples = load_squad(f, "1.1", "dev").examples
    feats = featurize(examples, tok, max_length=48)
    return examples, feats, tok.convert_ids_to_tokens(feats[0].input_ids)


def _logits(n: int, **peaks) -> np.ndarray:
    x = np.zeros(n, np.float32)
    for pos, value in peaks.items():
        x[int(pos[1:])] = value
    return x


def test_nbest_span_choice_length_limit_and_order(tmp_path, tok):
    examples, feats, pieces = _one_feature(tmp_path, tok)
    assert pieces[:4] == ["[CLS]", "who", "ran", "[SEP]"]
    # doc pieces: 4 alice 5 ran 6 to 7 the 8 park 9 . 10 bob 11 swam 12 .
    n = len(pieces)
    # the best raw pair is in the question (1, 2): not a document span; then the best is (4, 4)
    result = {"start_logits": _logits(n, p1=9, p4=5, p10=1), "end_logits": _logits(n, p2=9, p4=4, p11=3)}
    answers, _, nbest = predict_answers(examples, feats, [result], tok, "1.1")
    assert answers["q"] == "Alice"
    assert [c["text"] for c in nbest["q"][:2]] == ["Alice", "Alice ran to the Park. Bob swam"]
    # end before start is never an answer: start only at 10 ("bob"), end only at 8 ("park")
    result = {"start_logits": _logits(n, p10=9), "end_logits": _logits(n, p8=9, p11=1)}
    assert predict_answers(examples, feats, [result], tok, "1.1")[0]["q"] == "Bob swam"
    # max_answer_length: the span 4..11 has 8 pieces
    result = {"start_logits": _logits(n, p4=9, p10=1), "end_logits": _logits(n, p11=9)}
    assert predict_answers(examples, feats, [result], tok, "1.1", max_answer_length=8)[0]["q"].startswith("Alice")
    assert predict_answers(examples, feats, [result], tok, "1.1", max_answer_length=7)[0]["q"] == "Bob swam"
    # original casing and punctuation: "Park." -> "Park" when the span ends at "park"; "Park." with the "."
    result = {"start_logits": _logits(n, p7=9), "end_logits": _logits(n, p8=9)}
    assert predict_answers(examples, feats, [result], tok, "1.1")[0]["q"] == "the Park"
    result = {"start_logits": _logits(n, p8=9), "end_logits": _logits(n, p9=9)}
    assert predict_answers(examples, feats, [result], tok, "1.1")[0]["q"] == "Park."


def test_final_text_recovers_original_characters(tok):
    assert final_text("steve smith", "Steve Smith's", tok) == "Steve Smith"
    assert final_text("1895", "(1895-1943).", tok) == "1895"
    assert final_text("nowhere", "Steve Smith's", tok) == "Steve Smith's"  # no alignment: the whole span


def test_joint_beam_and_v2_null_odds(tmp_path, tok):
    examples, feats, pieces = _one_feature(tmp_path, tok)
    n = len(pieces)
    # joint prediction: beam of 2 starts x 2 ends, scored by log-probabilities
    joint = {
        "start_logits": _logits(n),
        "start_top_log_probs": np.array([-0.1, -2.0]),
        "start_top_index": np.array([10, 4]),
        "end_top_log_probs": np.array([[-0.2, -0.3], [-0.1, -0.5]]),
        "end_top_index": np.array([[11, 12], [4, 5]]),
        "answerable_logit": np.float32(-3.5),
    }
    answers, null_odds, nbest = predict_answers(examples, feats, [joint], tok, "2.0")
    assert answers["q"] == "Bob swam"
    assert [c["text"] for c in nbest["q"]] == ["Bob swam", "Bob swam.", "Alice", "Alice ran"]
    assert null_odds["q"] == pytest.approx(-3.5)  # the answerable classifier's logit
    assert apply_null_threshold(answers, null_odds, -2.75) == {"q": "Bob swam"}
    assert apply_null_threshold(answers, {"q": -1.0}, -2.75) == {"q": ""}
    # without the classifier: null score start[0] + end[0], minus the best span's score
    result = {"start_logits": _logits(n, p0=3, p4=2), "end_logits": _logits(n, p0=1.5, p4=1)}
    answers, null_odds, _ = predict_answers(examples, feats, [result], tok, "2.0")
    assert answers["q"] == "Alice" and null_odds["q"] == pytest.approx(4.5 - 3.0)


def test_null_score_is_the_minimum_over_features(tmp_path, tok):
    context = " ".join(f"d{i}" for i in range(20))
    f = squad_file(tmp_path / "t.json", [{"context": context, "qas": [qa("q", "who ran", context, "d3")]}], "2.0")
    examples = load_squad(f, "2.0", "dev").examples
    feats = featurize(examples, tok, max_length=16, doc_stride=4)
    results = [
        {"start_logits": _logits(16, p5=2), "end_logits": _logits(16, p5=2), "answerable_logit": np.float32(v)}
        for v in (1.0, -4.0, 0.5, 2.0)
    ]
    _, null_odds, _ = predict_answers(examples, feats, results, tok, "2.0")
    assert null_odds["q"] == -4.0


# ---------------------------------------------------------------------------------------------- metrics


def test_normalisation_and_v1_scores():
    assert normalize_answer("  The Cat,  sat! on an  A-mat ") == "cat sat on amat"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert exact_v1("the Cat.", "cat") == 1.0
    assert f1_v1("cat sat on mat", "the cat sat") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert f1_v1("cat cat", "cat") == pytest.approx(2 * 0.5 * 1 / 1.5)  # token counts, not sets
    assert (exact_v1("the", "a"), f1_v1("the", "a")) == (1.0, 0.0)  # v1: both empty -> EM 1, F1 0
    gold = {"q1": ["Paris", "the city of Paris"], "q2": ["1895"], "q3": ["big red dog"]}
    scores = squad_v1(gold, {"q1": "city of paris", "q2": "in 1895", "q3": "blue cat"})
    # q1 exact through the second answer; q2 f1 2/3; q3 0; every question counts
    assert scores["exact"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert squad_v1(gold, {"q1": "Paris"})["exact"] == pytest.approx(100 / 3)  # unanswered -> 0


def test_v2_no_answer_scores_and_best_threshold():
    assert f1_v2("", "") == 1.0 and f1_v2("", "cat") == 0.0 and f1_v2("the", "") == 1.0
    gold = {"a1": ["cat"], "a2": ["big dog"], "n1": [], "n2": []}
    preds = {"a1": "cat", "a2": "dog", "n1": "mat", "n2": "mat"}
    odds = {"a1": -5.0, "a2": -1.0, "n1": 0.0, "n2": -3.0}
    out = squad_v2(gold, preds, odds, threshold=-2.0)
    # answered: a1 (1 / 1), n2 (0 / 0); "" for a2 (0 / 0) and n1 (1 / 1)
    assert (out["exact"], out["f1"]) == (50.0, 50.0)
    assert (out["HasAns_exact"], out["HasAns_f1"], out["HasAns_total"]) == (50.0, 50.0, 2)
    assert (out["NoAns_exact"], out["NoAns_total"]) == (50.0, 2)
    # by increasing odds: a1 +1 (3), n2 -1 (2), a2 +0 / +2/3, n1 -1: the best is 3 at a1's odds
    assert (out["best_exact"], out["best_exact_thresh"]) == (75.0, -5.0)
    assert (out["best_f1"], out["best_f1_thresh"]) == (75.0, -5.0)
    # a threshold above every odds answers everything; one below them all answers "" everywhere
    assert squad_v2(gold, preds, odds, threshold=10.0)["exact"] == 25.0
    assert squad_v2(gold, preds, odds, threshold=-10.0)["exact"] == 50.0
    assert find_best_thresh(preds, {"n1": 0.0, "n2": 0.0}, {"n1": 1.0, "n2": 2.0}, {"n1": False, "n2": False}) == (
        100.0,
        0.0,
    )
    # "" predictions of no-answer questions cost nothing when they are answered
    assert squad_v2(gold, {**preds, "n2": ""}, odds, threshold=-2.0)["NoAns_exact"] == 100.0


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ('{"version": "1.1"}', "no top-level 'data' list"),
        ('{"data": [{"paragraphs": [{"qas": []}]}]}', "'context' string"),
        ('{"data": [{"paragraphs": [{"context": "a b", "qas": [{"question": "q"}]}]}]}', "'id' string"),
        (
            '{"data": [{"paragraphs": [{"context": "alice ran", "qas": [{"id": "x", "question": "who", '
            '"answers": [{"text": "alice", "answer_start": 3}]}]}]}]}',
            "is not at answer_start 3",
        ),
        (
            '{"data": [{"paragraphs": [{"context": "alice ran", "qas": [{"id": "x", "question": "who", '
            '"answers": [{"text": "alice"}]}]}]}]}',
            "'answers' must be a list",
        ),
        (
            '{"data": [{"paragraphs": [{"context": "alice ran", "qas": [{"id": "x", "question": "who", '
            '"answers": [], "is_impossible": true}]}]}]}',
            "pass version='2.0'",
        ),
    ],
)
def test_malformed_files_fail_with_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ElectraError) as err:
        load_squad(path, "1.1", "train")
    message = str(err.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_hf_source_syntax_and_local_paths_never_reach_the_hub(tmp_path, monkeypatch):
    from electra import hub

    def no_hub(*args):
        raise AssertionError("the hub was contacted")

    monkeypatch.setattr(hub, "require", no_hub)
    with pytest.raises(ElectraError, match="no such file"):
        load_squad(tmp_path / "squad", "1.1", "train")
    with pytest.raises(ElectraError, match="expected hf:NAME"):
        load_squad("hf:", "1.1", "train")


def test_hub_squad_v2_rows_become_examples(monkeypatch):
    import datasets

    from electra import hub

    asked = []
    monkeypatch.setattr(hub, "require", lambda name, what: asked.append(name))
    rows = {
        "id": ["a", "b"],
        "title": ["t", "t"],
        "context": ["Alice ran to the park.", "Alice ran to the park."],
        "question": ["who ran?", "who swam?"],
        "answers": [{"text": ["Alice"], "answer_start": [0]}, {"text": [], "answer_start": []}],
    }
    calls = []

    def fake_load(name, config=None, split=None):
        calls.append((name, config, split))
        return datasets.Dataset.from_dict(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    data = load_squad("hf:squad_v2", "2.0", "train")
    assert asked == ["squad_v2"] and calls == [("squad_v2", None, "train")]
    a, b = data.examples
    assert (a.answer_text, a.start_word, a.end_word, a.is_impossible) == ("Alice", 0, 0, False)
    assert b.is_impossible and b.answers == []
    load_squad("hf:squad_v2", "2.0", "dev")
    assert calls[-1] == ("squad_v2", None, "validation")
    monkeypatch.setattr(hub, "require", lambda name, what: (_ for _ in ()).throw(ElectraError("hub unreachable")))
    with pytest.raises(ElectraError, match="hub unreachable"):
        load_squad("hf:squad", "1.1", "train")


# ---------------------------------------------------------------------------------------------- model


def test_transformers_head_matches_electra_for_question_answering(tok):
    from transformers import ElectraForQuestionAnswering

    from electra.hf import hf_config

    torch.manual_seed(0)
    ours = QuestionAnswerer(ModelConfig(**MICRO), "transformers").eval()
    theirs = ElectraForQuestionAnswering(hf_config(ours.config)).eval()
    state = {k: v for k, v in ours.state_dict().items()}
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("_ids") for k in missing)
    ids = torch.randint(5, len(VOCAB), (2, 12))
    types = torch.zeros_like(ids)
    types[:, 5:] = 1
    starts, ends = torch.tensor([6, 0]), torch.tensor([8, 0])
    out = ours(ids, torch.ones_like(ids), types)
    ref = theirs(input_ids=ids, token_type_ids=types, start_positions=starts, end_positions=ends)
    torch.testing.assert_close(out["start_logits"], ref.start_logits)
    torch.testing.assert_close(ours.loss(out, starts, ends, torch.zeros(2)).mean(), ref.loss)


def test_official_head_masks_and_conditions_the_end_on_the_start():
    torch.manual_seed(0)
    model = QuestionAnswerer(ModelConfig(**MICRO), "official", HeadOptions(beam_size=3)).eval()
    ids = torch.randint(5, len(VOCAB), (2, 10))
    types = torch.tensor([[0] * 4 + [1] * 6, [0] * 4 + [1] * 6])
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    out = model(ids, mask, types * mask)
    allowed = ((mask * types) > 0) | (torch.arange(10) == 0)
    assert (out["start_logits"][~allowed] < -500).all() and (out["start_logits"][allowed] > -500).all()
    assert out["end_top_index"].shape == (2, 3, 3) and out["answerable_logit"].shape == (2,)
    # the beam's end logits are the teacher-forced ones for that start
    start = out["start_top_index"][:, 1]
    forced = model(ids, mask, types * mask, start_positions=start)["end_logits"].log_softmax(-1)
    best = forced.topk(3, -1)
    torch.testing.assert_close(out["end_top_log_probs"][:, 1], best.values)
    # loss: (CE start + CE end) / 2 + 0.5 * BCE(answerable, is_impossible)
    sp, ep, imp = torch.tensor([5, 0]), torch.tensor([6, 0]), torch.tensor([0.0, 1.0])
    train_out = model(ids, mask, types * mask, start_positions=sp)
    ce = torch.nn.functional.cross_entropy
    expected = ce(train_out["start_logits"], sp, reduction="none") + ce(train_out["end_logits"], ep, reduction="none")
    expected = expected / 2 + 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(
        train_out["answerable_logit"], imp, reduction="none"
    )
    torch.testing.assert_close(model.loss(train_out, sp, ep, imp), expected)
    assert all(n.startswith(("electra.", "qa_")) for n, _ in model.named_parameters())


# ---------------------------------------------------------------------------------------------- end to end


def _dataset(rng: random.Random, n: int, version: str, prefix: str) -> list[dict]:
    paragraphs = []
    for i in range(n):
        name, other = rng.sample(NAMES, 2)
        place, place2 = rng.sample(PLACES, 2)
        verb, verb2 = rng.sample(VERBS, 2)
        context = f"{name.title()} {verb} to the {place.title()}. {other.title()} {verb2} in the {place2}."
        qas = [qa(f"{prefix}{i}a", f"who {verb} to the {place}?", context, name.title())]
        qas.append(qa(f"{prefix}{i}b", f"where did {other} go?", context, f"the {place2}"))
        if version == "2.0" and i % 2 == 0:
            missing = next(v for v in VERBS if v not in (verb, verb2))
            impossible = qa(f"{prefix}{i}c", f"who {missing} to the {place}?", context, None, is_impossible=True)
            impossible["plausible_answers"] = [{"text": name.title(), "answer_start": 0}]
            qas.append(impossible)
        paragraphs.append({"context": context, "qas": qas})
    return paragraphs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tok) -> Path:
    root = tmp_path_factory.mktemp("qa")
    rng = random.Random(0)
    for version in ("1.1", "2.0"):
        v = version.replace(".", "")
        squad_file(root / f"train{v}.json", _dataset(rng, 10, version, "t"), version)
        squad_file(root / f"dev{v}.json", _dataset(rng, 4, version, "d"), version)
    torch.manual_seed(0)
    disc = Discriminator(ModelConfig(**MICRO))
    init_weights(disc)
    save_hf(disc, root / "micro", tokenizer=tok)
    return root


RECIPE = dict(epochs=2, batch_size=8, max_length=64, n_best_size=64, learning_rate=1e-3)


@pytest.fixture(scope="module")
def runs(workdir):
    """runs[version, head]: the results of that finetuning (trained on first use, then kept)."""
    done: dict[tuple[str, str], dict] = {}

    class Runs:
        def __getitem__(self, key: tuple[str, str]) -> dict:
            if key not in done:
                version, head = key
                v = version.replace(".", "")
                done[key] = finetune_squad(
                    str(workdir / "micro"),
                    workdir / f"out_{head}_{v}",
                    train=str(workdir / f"train{v}.json"),
                    dev=str(workdir / f"dev{v}.json"),
                    version=version,
                    head=head,
                    device="cpu",
                    quiet=True,
                    save_model=True,
                    **RECIPE,
                )
            return done[key]

    return Runs()


@pytest.mark.parametrize("version", ["1.1", "2.0"])
@pytest.mark.parametrize("head", ["official", "transformers"])
def test_finetune_writes_the_official_files(runs, workdir, version, head):
    results = runs[version, head]
    task = "squad11" if version == "1.1" else "squad20"
    d = workdir / f"out_{head}_{task[5:]}" / task / "run_0"
    names = {p.name for p in d.iterdir()}
    assert {"config.json", "predictions.json", "metrics.json", "model.safetensors", "nbest.json"} <= names
    assert ("null_odds.json" in names) == (version == "2.0")
    record = json.loads((d / "metrics.json").read_text())
    config = json.loads((d / "config.json").read_text())
    assert config["finetune"]["epochs"] == 2 and config["finetune"]["layerwise_lr_decay"] == 0.8
    assert config["head"] == head and config["qa"]["doc_stride"] == 128
    preds = json.loads((d / "predictions.json").read_text())
    dev = json.loads((workdir / f"dev{version.replace('.', '')}.json").read_text())
    gold = {q["id"]: [a["text"] for a in q["answers"]] for p in dev["data"][0]["paragraphs"] for q in p["qas"]}
    assert set(preds) == set(gold) and all(isinstance(a, str) for a in preds.values())
    contexts = " ".join(p["context"] for p in dev["data"][0]["paragraphs"])
    assert all(a in contexts for a in preds.values())  # answers are pieces of the original text
    # metrics.json is the official evaluation of predictions.json (for 2.0, "" already applied)
    metrics = record["metrics"]
    again = squad_v1(gold, preds) if version == "1.1" else squad_v2(gold, preds)
    assert (metrics["exact"], metrics["f1"]) == pytest.approx((again["exact"], again["f1"]))
    if version == "2.0":
        odds = json.loads((d / "null_odds.json").read_text())
        threshold = -2.75 if head == "official" else 0.0
        assert metrics["na_threshold"] == threshold
        assert all((preds[q] == "") == (odds[q] > threshold) for q in preds)
        assert {"HasAns_exact", "NoAns_exact", "best_f1", "best_f1_thresh"} <= set(metrics)
    assert results["runs"][0]["metrics"] == metrics and results["median"]["f1"] == metrics["f1"]
    assert json.loads((d.parent.parent / "results.json").read_text())["median"] == results["median"]
    assert json.loads((d.parent / "results.json").read_text())["median"] == results["median"]


def test_finetune_resumes_and_refuses_too_long_sequences(runs, workdir, monkeypatch):
    from electra.finetune.qa import finetune as qa_finetune

    def no_training(*args, **kwargs):
        raise AssertionError("a complete run was trained again")

    monkeypatch.setattr(qa_finetune, "train", no_training)
    again = finetune_squad(
        str(workdir / "micro"),
        workdir / "out_official_11",
        train=str(workdir / "train11.json"),
        dev=str(workdir / "dev11.json"),
        device="cpu",
        quiet=True,
        **RECIPE,
    )
    assert again["runs"][0]["metrics"] == runs["1.1", "official"]["runs"][0]["metrics"]
    monkeypatch.undo()
    with pytest.raises(ElectraError, match="max_length 512 exceeds the model's 64 positions"):
        finetune_squad(
            str(workdir / "micro"),
            workdir / "out_long",
            train=str(workdir / "train11.json"),
            dev=str(workdir / "dev11.json"),
            device="cpu",
            quiet=True,
        )
    with pytest.raises(ElectraError, match="unknown config key 'no_such_option'"):
        finetune_squad("random:tiny", workdir / "out_bad", train="x", dev="y", no_such_option=1)
    with pytest.raises(ElectraError, match="--dev missing.json: no such file"):
        finetune_squad("random:tiny", workdir / "out_bad", train=str(workdir / "train11.json"), dev="missing.json")
    from electra import hub

    monkeypatch.setattr(hub, "reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(hub, "offline", lambda: False)
    with pytest.raises(ElectraError, match="'squad_v2' is not a local path and the hub"):
        finetune_squad("random:tiny", workdir / "out_bad", train="hf:squad_v2", dev="hf:squad_v2", version="2.0")
    assert not (workdir / "out_bad").exists() and not (workdir / "out_long").exists()


def _pipeline_answers(directory: Path, questions: list[tuple[str, str, str]]) -> dict[str, str]:
    """transformers' question-answering pipeline where it exists; otherwise the same thing by hand on
    `ElectraForQuestionAnswering` (transformers 5 removed the pipeline): the best context span of at most 30
    pieces by start + end score, its text cut from the context by the tokenizer's character offsets."""
    from transformers import AutoTokenizer, ElectraForQuestionAnswering
    from transformers.pipelines import SUPPORTED_TASKS

    if "question-answering" in SUPPORTED_TASKS:
        from transformers import pipeline

        qa_pipe = pipeline("question-answering", model=str(directory))
        return {q: qa_pipe(question=text, context=c, max_answer_len=30)["answer"] for q, text, c in questions}
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    model = ElectraForQuestionAnswering.from_pretrained(str(directory)).eval()
    answers = {}
    for qid, question, context in questions:
        enc = tokenizer(question, context, return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping")[0]
        with torch.no_grad():
            out = model(**enc)
        in_context = torch.tensor([s == 1 for s in enc.sequence_ids(0)])
        score = out.start_logits[0][:, None] + out.end_logits[0][None, :]
        n = score.shape[0]
        ok = in_context[:, None] & in_context[None, :]
        ok &= torch.ones(n, n, dtype=torch.bool).triu() & ~torch.ones(n, n, dtype=torch.bool).triu(30)
        s, e = divmod(int(score.masked_fill(~ok, -1e9).argmax()), n)
        answers[qid] = context[int(offsets[s][0]) : int(offsets[e][1])]
    return answers


def test_transformers_export_answers_like_the_run(runs, workdir):
    runs["1.1", "transformers"]
    run = workdir / "out_transformers_11" / "squad11" / "run_0"
    record = export_qa_run(run, workdir / "export_tf")
    assert record["class"] == "ElectraForQuestionAnswering" and record["verified_max_abs_diff"] < 1e-4
    dev = json.loads((workdir / "dev11.json").read_text())
    questions = [(q["id"], q["question"], p["context"]) for p in dev["data"][0]["paragraphs"] for q in p["qas"]]
    preds = json.loads((run / "predictions.json").read_text())
    assert _pipeline_answers(workdir / "export_tf", questions) == preds
    with pytest.raises(ElectraError, match="already exists"):
        export_qa_run(run, workdir / "export_tf")


def test_official_export_readme_code_reproduces_the_head(runs, workdir):
    from electra.finetune.qa.export import load_qa_run

    runs["2.0", "official"]
    run = workdir / "out_official_20" / "squad20" / "run_0"
    out = workdir / "export_official"
    record = export_qa_run(run, out)
    readme = (out / "README.md").read_text()
    assert "not** transformers'" in readme and (out / "qa_head.safetensors").is_file()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1).replace('"DIR', f'"{out}')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # the README's own example runs as written
    model, _, tok_ = load_qa_run(run)
    ids = [tok_.cls_id, *tok_.encode("who ran"), tok_.sep_id, *tok_.encode("alice ran to the park ."), tok_.sep_id]
    batch = {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "token_type_ids": torch.tensor([[0] * 4 + [1] * (len(ids) - 4)]),
    }
    theirs = namespace["qa_head"](batch)
    with torch.no_grad():
        ours = model(**batch)
    for key in ("start_logits", "start_top_log_probs", "end_top_log_probs", "answerable_logit"):
        torch.testing.assert_close(theirs[key], ours[key], atol=1e-4, rtol=1e-4)
    assert torch.equal(theirs["end_top_index"], ours["end_top_index"])
    assert record["head"] == "official" and record["options"]["beam_size"] == 20


def test_the_command_line_finetunes_squad_files_and_exports_the_run(workdir, tmp_path, capsys):
    from electra.cli import main

    out = tmp_path / "cli"
    argv = ["finetune", "--model", str(workdir / "micro"), "--out", str(out), "--kind", "qa", "--qa-version", "2.0"]
    argv += ["--train", str(workdir / "train20.json"), "--dev", str(workdir / "dev20.json"), "--head", "transformers"]
    argv += ["--epochs", "1", "--batch-size", "8", "--max-length", "64", "--save-model", "--quiet"]
    assert main(argv) == 0
    shown = json.loads(capsys.readouterr().out)  # the medians over runs
    assert {"exact", "f1", "HasAns_exact", "NoAns_exact", "best_f1"} <= set(shown)
    assert main(["export", str(out / "squad20" / "run_0"), "--out", str(tmp_path / "hf")]) == 0
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["ElectraForQuestionAnswering"]
    assert main([*argv[:-1], "--test", str(workdir / "dev20.json")]) == 2
    assert "--test is not used for qa" in capsys.readouterr().err


def test_feature_outputs_do_not_depend_on_batching(workdir, tok):
    """Evaluation batches features shortest first and maps them back: each feature's logits equal those of a
    batch of one (no padding), up to float rounding. (The official head's beam arrays also rank positions masked
    with the -1000 penalty, padding among them, as in any batching; the logits they come from are compared.)"""
    from electra.finetune.qa.finetune import predict

    dev = load_squad(str(workdir / "dev20.json"), "2.0", "dev")
    feats = featurize(dev.examples, tok, training=False, max_length=24, max_query_length=8, doc_stride=6)
    assert len({len(f.input_ids) for f in feats}) > 1
    torch.manual_seed(0)
    model = QuestionAnswerer(ModelConfig(**MICRO), "official")
    cpu = torch.device("cpu")
    one, many = predict(model, feats, cpu, 1, tok.pad_id), predict(model, feats, cpu, 5, tok.pad_id)
    assert len(one) == len(many) == len(feats)
    for a, b, f in zip(one, many, feats, strict=True):
        assert a.keys() == b.keys() and len(a["start_logits"]) == len(f.input_ids)
        for k in [k for k in a if k.endswith("logits")]:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-5)
