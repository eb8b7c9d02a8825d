"""`electra detect` / `electra fill` on directories written by transformers' save_pretrained."""

import json

import pytest
import torch
import transformers

from electra.cli import main
from electra.tokenizer import load_tokenizer


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
    torch.manual_seed(3)
    disc = transformers.ElectraForPreTraining(_hf_config(tok.vocab_size)).eval()
    gen = transformers.ElectraForMaskedLM(_hf_config(tok.vocab_size)).eval()
    for name, model in (("disc", disc), ("gen", gen)):
        model.save_pretrained(tmp_path / name)
        tok.save(tmp_path / name)
    return tmp_path, disc, gen, tok


def test_detect_json_matches_transformers(hf_dirs, capsys):
    root, disc, _, tok = hf_dirs
    texts = ["the cat sat on the mat.", "a big red dog was not small!"]
    assert main(["detect", "--model", str(root / "disc"), "--json", *texts]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for text, line in zip(texts, lines, strict=True):
        out = json.loads(line)
        enc = tok.backend.encode(text)
        assert out["tokens"] == enc.tokens and out["tokens"][0] == "[CLS]" and out["tokens"][-1] == "[SEP]"
        with torch.no_grad():
            ref = torch.sigmoid(disc(input_ids=torch.tensor([enc.ids])).logits)[0]
        torch.testing.assert_close(torch.tensor(out["probs"]), ref, atol=1e-5, rtol=0)


def test_fill_json_matches_transformers(hf_dirs, capsys):
    root, _, gen, tok = hf_dirs
    text = "the [MASK] sat on the [MASK]."
    assert main(["fill", "--model", str(root / "gen"), "--top-k", "3", "--json", text]) == 0
    masks = json.loads(capsys.readouterr().out)["masks"]
    enc = tok.backend.encode(text)
    with torch.no_grad():
        probs = gen(input_ids=torch.tensor([enc.ids])).logits[0].softmax(-1)
    where = [i for i, t in enumerate(enc.ids) if t == tok.mask_id]
    assert len(masks) == 2
    for pos, cands in zip(where, masks, strict=True):
        ref_p, ref_i = probs[pos].topk(3)
        assert [c["token"] for c in cands] == tok.convert_ids_to_tokens(ref_i)
        torch.testing.assert_close(torch.tensor([c["prob"] for c in cands]), ref_p, atol=1e-5, rtol=0)


def test_bad_inputs_give_one_clear_line(hf_dirs, tmp_path, capsys):
    root, *_ = hf_dirs
    (tmp_path / "empty").mkdir()
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(json.dumps({"model_type": "electra"}))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    cases = [
        (["detect", "--model", str(tmp_path / "missing"), "x"], "not found"),
        (["detect", "--model", str(tmp_path / "empty"), "x"], "no config.json"),
        (["detect", "--model", str(tmp_path / "noweights"), "x"], "no weights"),
        (["detect", "--model", str(tmp_path / "bert"), "x"], "not an ELECTRA model"),
        (["detect", "--model", str(root / "disc"), " ".join(["cat"] * 40)], "at most 24"),
        (["fill", "--model", str(root / "gen"), "no mask here"], "no [MASK]"),
        (["fill", "--model", str(root / "gen"), "--top-k", "0", "the [MASK]"], "--top-k must be at least 1"),
        (["detect", "--model", str(root / "disc"), "the cat", " "], "text 2 is empty"),
        (["fill", "--model", str(root / "disc"), "the [MASK]"], "not a generator checkpoint"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, (argv, err)


def test_human_output_says_what_the_numbers_are_and_shows_the_filled_text(hf_dirs, capsys):
    from electra.inference import filled_text

    root, *_ = hf_dirs
    assert main(["detect", "--model", str(root / "disc"), "the cat sat"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["token", "P(replaced)"] and lines[1].split()[0] == "[CLS]"
    assert main(["fill", "--model", str(root / "gen"), "--top-k", "2", "the [MASK] sat on the [MASK]."]) == 0
    out = capsys.readouterr().out.splitlines()
    best = [line.split(": ")[1].split()[0] for line in out[1:]]
    assert len(best) == 2 and out[0] == filled_text("the [MASK] sat on the [MASK].", best)
    assert filled_text("the [MASK] sat", ["cat"]) == "the cat sat"


def test_filled_text_joins_word_pieces():
    from electra.inference import filled_text

    assert filled_text("play [MASK] here", ["##ing"]) == "playing here"
    assert filled_text("[MASK] and [MASK]", ["cats", "dogs"]) == "cats and dogs"
