"""`electra vocab`: a new WordPiece vocabulary that prepare and the loader then use (and insist on)."""

import pytest
from _data_helpers import random_documents, write_corpus

from electra import cli
from electra.cli import main
from electra.data import PretrainLoader, load_dataset_meta, prepare_corpus
from electra.data.vocab import train_vocab
from electra.errors import ElectraError
from electra.tokenizer import SPECIAL_TOKENS, load_tokenizer


@pytest.fixture(autouse=True)
def only_data_commands(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", {k: v for k, v in cli.COMMANDS.items() if k in ("prepare", "vocab")})


def test_trained_vocabulary_round_trip(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c.txt", random_documents(5, 30))
    corpus2 = tmp_path / "accents.txt"
    corpus2.write_text("Café NAÏVE résumé\nCafé\n")
    out = tmp_path / "tok"
    assert main(["vocab", "--corpus", str(corpus), str(corpus2), "--size", "300", "--out", str(out)]) == 0
    tok = load_tokenizer(out)
    vocab = tok.vocab()
    assert vocab[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)  # [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4
    assert tok.vocab_size <= 300 and "the" in vocab
    assert tok.convert_ids_to_tokens(tok.encode("The CAFÉ")) == ["the", *tok.convert_ids_to_tokens(tok.encode("cafe"))]
    assert main(["vocab", "--corpus", str(corpus), "--size", "300", "--out", str(out)]) == 2  # exists
    assert "already exists" in capsys.readouterr().err

    data = prepare_corpus([str(corpus)], out, 32, tmp_path / "ds")
    assert load_dataset_meta(data)["tokenizer_fingerprint"] == tok.fingerprint()
    loader = PretrainLoader(data, global_batch_size=2)
    assert loader.tokenizer.fingerprint() == tok.fingerprint()
    assert int(next(loader)["input_ids"][0, 0]) == tok.cls_id == 2

    cased = tmp_path / "cased"
    assert main(["vocab", "--corpus", str(corpus), "--size", "300", "--cased", "--out", str(cased)]) == 0
    cased_tok = load_tokenizer(cased)
    assert not cased_tok.lowercase and cased_tok.fingerprint() != tok.fingerprint()
    with pytest.raises(ElectraError, match="tokenizer_fingerprint"):
        prepare_corpus([str(corpus)], cased_tok, 32, data)


def test_training_is_deterministic():
    # tokenizers' trainer alone gives another 2,000-token vocabulary on every call here (huggingface/tokenizers#1794)
    first, second = train_vocab(["builtin"], 2000), train_vocab(["builtin"], 2000)
    assert first.vocab() == second.vocab()
    specials = [t.content for t in first.backend.get_added_tokens_decoder().values()]
    assert sorted(specials) == sorted(SPECIAL_TOKENS)  # the ##c pieces listed for training are ordinary tokens
    assert first.backend.encode("x ##a", add_special_tokens=False).tokens == ["x", "#", "#", "a"]


def test_a_vocabulary_too_small_for_the_corpus_characters_is_refused():
    with pytest.raises(ElectraError, match="give --size above"):
        train_vocab(["builtin"], 20)
