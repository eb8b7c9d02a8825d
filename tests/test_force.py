"""`--force` clears an output directory: it must never clear an input given to the same command (issue: a
vocabulary trained with `--out DIR --force` on DIR/corpus.txt deleted the corpus)."""

import shutil
from pathlib import Path

from test_pretrain import TINY, data_dir  # noqa: F401  (data_dir: the session fixture)

from electra.cli import main

TEXT = "the cat sat on the mat.\nthe dog was big and red.\n" * 50


def _one_error_line(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0], err
    assert all(w in err[0] for w in words), err[0]
    return err[0]


def test_vocab_force_refuses_a_corpus_inside_its_output_and_deletes_nothing(tmp_path, capsys):
    out = tmp_path / "dir"
    out.mkdir()
    (out / "corpus.txt").write_text(TEXT)
    (out / "notes.txt").write_text("mine")
    code = main(["vocab", "--corpus", str(out / "corpus.txt"), "--size", "100", "--out", str(out), "--force"])
    assert code == 2
    _one_error_line(capsys, "--corpus", "--out", "--force")
    assert (out / "corpus.txt").read_text() == TEXT and (out / "notes.txt").read_text() == "mine"


def test_vocab_refuses_an_output_inside_its_corpus_directory(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(TEXT)
    assert main(["vocab", "--corpus", str(corpus), "--size", "100", "--out", str(corpus / "vocab")]) == 2
    _one_error_line(capsys, "--corpus")
    assert sorted(p.name for p in corpus.iterdir()) == ["a.txt"]


def test_vocab_force_still_replaces_an_output_that_holds_no_input(tmp_path, capsys):
    corpus, out = tmp_path / "corpus.txt", tmp_path / "vocab"
    corpus.write_text(TEXT)
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert main(["vocab", "--corpus", str(corpus), "--size", "100", "--out", str(out), "--force"]) == 0
    assert (out / "vocab.txt").is_file() and not (out / "old.txt").exists()


def test_quickstart_force_refuses_a_corpus_inside_its_output_before_deleting_anything(tmp_path, capsys):
    out = tmp_path / "qs"
    out.mkdir()
    (out / "corpus.txt").write_text(TEXT)
    (out / "notes.txt").write_text("mine")
    assert main(["quickstart", "--out", str(out), "--force", "--corpus", str(out / "corpus.txt")]) == 2
    _one_error_line(capsys, "--corpus", "--force")
    assert (out / "corpus.txt").read_text() == TEXT and (out / "notes.txt").read_text() == "mine"


def test_pretrain_force_refuses_inputs_inside_the_outputs_it_clears(data_dir, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    args = ["pretrain", *TINY, "--max-steps", "4", "--eval-every", "0", "--probe", "none", "--out", str(run)]
    assert main([*args, "--data", str(data_dir)]) == 0
    kept = run / "checkpoints" / "my_data"
    shutil.copytree(data_dir, kept)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    capsys.readouterr()
    assert main([*args, "--data", str(kept), "--force"]) == 2
    _one_error_line(capsys, "--data", "--force")
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    assert main([*args, "--data", str(data_dir), "--force"]) == 0  # an input elsewhere: --force starts over
    assert not Path(kept).exists()
