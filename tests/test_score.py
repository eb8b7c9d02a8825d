"""`electra score` / `electra.api.score`: PLL and Electric's score against hand computations with transformers."""

import json

import pytest
import torch
import transformers

from electra.api import score
from electra.cli import main
from electra.score import default_method
from electra.tokenizer import load_tokenizer

SENTENCES = ["the cat sat on the mat.", "a big red dog", "", "she was not small and it is blue!"]


def _hf_config(vocab_size):
    return transformers.ElectraConfig(
        vocab_size=vocab_size,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=24,
    )


@pytest.fixture
def hf_dirs(tmp_path, tiny_vocab):
    tok = load_tokenizer(tiny_vocab)
    torch.manual_seed(5)
    disc = transformers.ElectraForPreTraining(_hf_config(tok.vocab_size)).eval()
    gen = transformers.ElectraForMaskedLM(_hf_config(tok.vocab_size)).eval()
    for name, model in (("disc", disc), ("gen", gen)):
        model.save_pretrained(tmp_path / name)
        tok.save(tmp_path / name)
    return tmp_path, disc, gen, tok


def _ids(tok, text):
    return [tok.cls_id, *tok.encode(text), tok.sep_id]


def _pll_by_hand(gen, ids, mask_id):
    """Salazar et al.'s PLL: mask each inner token alone, one forward pass each, add log p of the true token."""
    total = 0.0
    for t in range(1, len(ids) - 1):
        masked = list(ids)
        masked[t] = mask_id
        with torch.no_grad():
            logits = gen(input_ids=torch.tensor([masked])).logits[0, t]
        total += torch.log_softmax(logits.double(), -1)[ids[t]].item()
    return total


def _electric_by_hand(disc, ids):
    """Minus the sum of the discriminator's outputs (the energies) over the tokens between [CLS] and [SEP]."""
    with torch.no_grad():
        out = disc(input_ids=torch.tensor([ids])).logits[0]
    return -out[1:-1].double().sum().item()


def _write_text(path, sentences):
    path.write_text("".join(s + "\n" for s in sentences))
    return path


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_pll_equals_masking_each_token_by_hand(hf_dirs, tmp_path, batch_size):
    root, _, gen, tok = hf_dirs
    src = _write_text(tmp_path / "in.txt", SENTENCES)
    record = score(root / "gen", src, tmp_path / "out.tsv", batch_size=batch_size, progress=False)
    assert record["method"] == "pll" and record["rows"] == len(SENTENCES) and record["truncated"] == 0
    expected = [_pll_by_hand(gen, _ids(tok, s), tok.mask_id) for s in SENTENCES]
    assert expected[2] == 0.0 and all(e < 0 for i, e in enumerate(expected) if i != 2)
    torch.testing.assert_close(torch.tensor(record["scores"]), torch.tensor(expected), atol=1e-4, rtol=0)
    assert record["tokens"] == sum(len(_ids(tok, s)) - 2 for s in SENTENCES)


def test_electric_equals_minus_the_summed_discriminator_outputs(hf_dirs, tmp_path):
    root, disc, _, tok = hf_dirs
    src = _write_text(tmp_path / "in.txt", SENTENCES)
    record = score(root / "disc", src, tmp_path / "out.tsv", batch_size=2, progress=False)
    assert record["method"] == "electric"
    expected = [_electric_by_hand(disc, _ids(tok, s)) for s in SENTENCES]
    torch.testing.assert_close(torch.tensor(record["scores"]), torch.tensor(expected), atol=1e-4, rtol=0)


def test_plain_text_round_trip_keeps_rows_and_order(hf_dirs, tmp_path):
    root, *_ = hf_dirs
    src = _write_text(tmp_path / "in.txt", SENTENCES)
    record = score(root / "disc", src, tmp_path / "out.tsv", progress=False)
    lines = (tmp_path / "out.tsv").read_text().splitlines()
    assert [line.rsplit("\t", 1)[0] for line in lines] == SENTENCES
    assert [float(line.rsplit("\t", 1)[1]) for line in lines] == record["scores"]


def test_tsv_round_trip_scores_the_named_column(hf_dirs, tmp_path):
    root, *_ = hf_dirs
    rows = [f"{i}\t{s}\tx y" for i, s in enumerate(SENTENCES)]
    src = tmp_path / "in.tsv"
    src.write_text("id\tsentence\tother\n" + "\n".join(rows) + "\n")
    record = score(root / "gen", src, tmp_path / "out.tsv", text_column="sentence", progress=False)
    by_text = score(root / "gen", _write_text(tmp_path / "plain.txt", SENTENCES), tmp_path / "p.tsv", progress=False)
    assert record["scores"] == by_text["scores"]
    lines = (tmp_path / "out.tsv").read_text().splitlines()
    assert lines[0] == "id\tsentence\tother\tscore"
    assert [line.rsplit("\t", 1)[0] for line in lines[1:]] == rows
    assert [float(line.rsplit("\t", 1)[1]) for line in lines[1:]] == record["scores"]


def test_tsv_default_column_is_the_first(hf_dirs, tmp_path):
    root, *_ = hf_dirs
    src = tmp_path / "in.tsv"
    src.write_text("text\tlabel\n" + "".join(f"{s}\t1\n" for s in SENTENCES))
    record = score(root / "disc", src, tmp_path / "out.tsv", progress=False)
    plain = score(root / "disc", _write_text(tmp_path / "plain.txt", SENTENCES), tmp_path / "p.tsv", progress=False)
    assert record["scores"] == plain["scores"]


def test_jsonl_round_trip_via_cli_keeps_objects_and_order(hf_dirs, tmp_path, capsys):
    root, *_ = hf_dirs
    objects = [{"sent": s, "id": i, "meta": {"é": [1, 2]}} for i, s in enumerate(SENTENCES)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(o) + "\n" for o in objects))
    argv = ["score", "--model", str(root / "gen"), "--text-field", "sent", "--no-progress", str(src)]
    assert main(argv) == 0  # to stdout
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    plain = score(root / "gen", _write_text(tmp_path / "plain.txt", SENTENCES), None, progress=False)
    assert [{k: v for k, v in o.items() if k != "score"} for o in out] == objects
    assert [o["score"] for o in out] == plain["scores"]


def test_max_length_cuts_and_reports_it(hf_dirs, tmp_path, capsys):
    root, _, gen, tok = hf_dirs
    long = " ".join(["the cat"] * 10)  # 20 word pieces
    src = _write_text(tmp_path / "in.txt", [long, "a dog"])
    argv = ["score", "--model", str(root / "gen"), "--max-length", "8", "--out", str(tmp_path / "o.tsv"), str(src)]
    assert main([*argv, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "1 of 2 sentences cut to 8 tokens" in err
    cut = [tok.cls_id, *tok.encode(long)[:6], tok.sep_id]
    first = float((tmp_path / "o.tsv").read_text().splitlines()[0].rsplit("\t", 1)[1])
    assert first == pytest.approx(_pll_by_hand(gen, cut, tok.mask_id), abs=1e-4)


def test_bad_input_is_one_line_and_exit_2(hf_dirs, tmp_path, capsys):
    root, *_ = hf_dirs
    tsv = tmp_path / "in.tsv"
    tsv.write_text("id\ttext\n1\tthe cat\n")
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"text": "the cat"}\n{"sentence": "a dog"}\n')
    plain = _write_text(tmp_path / "in.txt", ["the cat"])
    (tmp_path / "bare").mkdir()
    transformers.ElectraModel(_hf_config(load_tokenizer(root / "gen").vocab_size)).save_pretrained(tmp_path / "bare")
    capsys.readouterr()  # transformers' own progress bar
    model = ["--model", str(root / "gen")]
    cases = [
        ([*model, str(tmp_path / "missing.txt")], "missing.txt does not exist"),
        ([*model, "--text-column", "sentence", str(tsv)], "no column 'sentence' (--text-column sentence)"),
        ([*model, str(jsonl)], "in.jsonl:2: no string field 'text' (--text-column text)"),
        ([*model, "--batch-size", "0", str(plain)], "--batch-size must be a positive integer"),
        ([*model, "--max-length", "100", str(plain)], "--max-length must be at most 24"),
        (["--model", str(tmp_path / "bare"), str(plain)], "pass --method pll"),
        (["--model", str(tmp_path / "nowhere"), "--method", "pll", str(plain)], "not found"),
    ]
    for argv, expected in cases:
        assert main(["score", "--no-progress", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("electra score: error: "), err
        assert expected in err, err


def test_run_dir_of_an_electra_run_asks_for_the_method(tmp_path, tiny_vocab):
    from electra.errors import ElectraError

    words = [w for w in tiny_vocab.read_text().split() if w.isalpha()]
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(3 + i % 9)) + " ." for i in range(200)]
    (tmp_path / "corpus.txt").write_text("\n".join(lines) + "\n")
    shape = ["--hidden-size", "32", "--embedding-size", "16", "--num-hidden-layers", "1", "--intermediate-size", "32"]
    shape += ["--vocab-size", str(len(tiny_vocab.read_text().split())), "--max-length", "32", "--batch-size", "4"]
    run = tmp_path / "run"
    argv = ["pretrain", "--preset", "tiny", *shape, "--corpus", str(tmp_path / "corpus.txt"), "--vocab"]
    argv += [str(tiny_vocab), "--out", str(run), "--max-steps", "1", "--eval-every", "0", "--no-progress"]
    assert main(argv) == 0
    src = _write_text(tmp_path / "in.txt", ["the cat sat", "a dog"])
    with pytest.raises(ElectraError, match=r"objective electra\) has a masked-LM generator"):
        score(run, src, tmp_path / "o.tsv", progress=False)
    by_pll = score(run, src, tmp_path / "o.tsv", method="pll", progress=False)
    by_electric = score(run, src, tmp_path / "e.tsv", method="electric", progress=False)
    assert len(by_pll["scores"]) == len(by_electric["scores"]) == 2
    assert all(s < 0 for s in by_pll["scores"])
    config = run / "checkpoints" / "latest" / "config.json"  # the objective decides the default method
    meta = json.loads(config.read_text())
    for objective, method in (("electric", "electric"), ("mlm", "pll"), ("replace-mlm", "pll")):
        meta["config"]["objective"] = objective
        config.write_text(json.dumps(meta))
        assert default_method(run) == method


def test_progress_bar_counts_masked_copies_for_pll_and_sentences_for_electric(hf_dirs, tmp_path, capsys):
    root, _, _, tok = hf_dirs
    src = _write_text(tmp_path / "in.txt", SENTENCES)
    tokens = sum(len(tok.encode(s)) for s in SENTENCES)
    capsys.readouterr()
    score(root / "gen", src, tmp_path / "o.tsv", batch_size=4)
    err = capsys.readouterr().err
    assert "score (pll): 100%" in err and f"{tokens}/{tokens}" in err
    score(root / "disc", src, tmp_path / "o.tsv", batch_size=4)
    err = capsys.readouterr().err
    assert "score (electric): 100%" in err and f"{len(SENTENCES)}/{len(SENTENCES)}" in err
