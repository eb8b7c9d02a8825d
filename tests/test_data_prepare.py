"""`prepare_corpus` / `electra prepare`: sources, faithful examples, determinism, caching, bad input."""

import gzip
import json
import random
import re

import pytest
from _data_helpers import random_documents, write_corpus, write_vocab
from test_data_builder import reference_examples

from electra import cli
from electra.cli import main
from electra.data import load_dataset_meta, prepare_corpus, read_examples
from electra.data import store as store_module
from electra.data.prepare import build_or_reuse, chunk_seed
from electra.data.sources import ReadStats, builtin_documents, iter_documents, resolve_sources
from electra.errors import ElectraError
from electra.tokenizer import load_tokenizer


@pytest.fixture(autouse=True)
def only_data_commands(monkeypatch):
    """The CLI imports every registered workflow; keep these tests independent of the others' modules."""
    monkeypatch.setattr(cli, "COMMANDS", {k: v for k, v in cli.COMMANDS.items() if k in ("prepare", "vocab")})


@pytest.fixture()
def vocab(tmp_path):
    return write_vocab(tmp_path / "vocab.txt")


@pytest.fixture()
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus.txt", random_documents(0, 40))


def test_examples_are_the_official_builders_on_the_tokenized_corpus(tmp_path, vocab):
    docs = random_documents(1, 30)
    path = write_corpus(tmp_path / "c.txt", docs)
    tok = load_tokenizer(vocab)
    out = prepare_corpus([str(path)], tok, 32, tmp_path / "ds", seed=5)
    ids = [[tok.encode(line) for line in doc] for doc in docs]
    expected = reference_examples(ids, 32, random.Random(chunk_seed(5, 0)))  # one chunk: the corpus is small
    got = list(read_examples(out))
    assert len(got) == len(expected)
    for (token_ids, a_len), (a, b) in zip(got, expected, strict=True):
        assert token_ids == [tok.cls_id, *a, tok.sep_id, *([*b, tok.sep_id] if b else [])]
        assert a_len == len(a) + 2
        assert len(token_ids) <= 32
    meta = load_dataset_meta(out)
    assert meta["num_examples"] == len(expected) and meta["num_documents"] == 30
    assert meta["num_tokens"] == sum(len(t) for t, _ in got)
    assert load_tokenizer(out / "tokenizer").fingerprint() == tok.fingerprint() == meta["tokenizer_fingerprint"]


def test_words_up_to_200_characters_are_word_pieced(vocab):
    tok = load_tokenizer(vocab)  # docs/faithfulness.md §2.4: only words over 200 characters become [UNK]
    assert tok.encode("a" * 150) == [tok.encode("a")[0]] + [tok.backend.token_to_id("##a")] * 149
    assert tok.encode("a" * 201) == [tok.unk_id]


def test_same_output_for_any_number_of_workers(tmp_path, vocab, corpus):
    tok = load_tokenizer(vocab)
    one = prepare_corpus([str(corpus)], tok, 24, tmp_path / "w1", workers=1, chunk_chars=500)
    two = prepare_corpus([str(corpus)], tok, 24, tmp_path / "w2", workers=2, chunk_chars=500)
    assert load_dataset_meta(one)["num_examples"] > 50
    for name in store_module.DATA_FILES:
        assert (one / name).read_bytes() == (two / name).read_bytes()
    other_seed = prepare_corpus([str(corpus)], tok, 24, tmp_path / "s1", seed=1, chunk_chars=500)
    assert list(read_examples(other_seed)) != list(read_examples(one))


def test_chunks_do_not_change_the_rules(tmp_path, vocab, corpus):
    """Many small chunks: every example still obeys the layout and the max length, and no text is lost or mixed
    across documents beyond what the builder drops by truncation."""
    tok = load_tokenizer(vocab)
    out = prepare_corpus([str(corpus)], tok, 20, tmp_path / "ds", chunk_chars=300)
    for ids, a_len in read_examples(out):
        assert ids[0] == tok.cls_id and ids[a_len - 1] == tok.sep_id and ids[-1] == tok.sep_id
        assert tok.cls_id not in ids[1:] and ids.count(tok.sep_id) == (1 if a_len == len(ids) else 2)
        assert len(ids) <= 20


def test_sources_text_dir_jsonl_gzip_and_mixing(tmp_path):
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "b.txt").write_text("one\n  \ntwo\nthree\n\n\n")
    (d / "sub" / "c.txt.gz").write_bytes(gzip.compress(b"four\n\nfive"))
    (d / "a.jsonl").write_text(json.dumps({"text": "six\n\n  seven \n"}) + "\n" + json.dumps({"text": "eight"}) + "\n")
    (d / ".hidden.txt").write_text("never\n")
    (d / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "e.jsonl.gz").write_bytes(gzip.compress((json.dumps({"body": "nine"}) + "\n").encode()))
    docs = list(iter_documents(resolve_sources([str(d)]), ReadStats()))
    # sorted paths: a.jsonl, b.txt, sub/c.txt.gz; whitespace-only lines separate documents like empty ones
    assert docs == [["six", "seven"], ["eight"], ["one"], ["two", "three"], ["four"], ["five"]]
    mixed = list(
        iter_documents(
            resolve_sources([str(tmp_path / "e.jsonl.gz"), str(d / "b.txt")]), ReadStats(), text_field="body"
        )
    )
    assert mixed == [["nine"], ["one"], ["two", "three"]]


def test_wiki_line_cleaning(tmp_path):
    long_line = "x" * 70 + " () and (more)"
    path = tmp_path / "w.txt"
    path.write_text(f"short line\n{long_line}\n")
    docs = list(iter_documents(resolve_sources([str(path)], clean=True), ReadStats()))
    assert docs == [["x" * 70 + "  and (more)"]]


def test_hf_source_from_a_local_dataset_directory(tmp_path):
    d = tmp_path / "hfdata"
    d.mkdir()
    (d / "train.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in ["alpha\nbeta", "gamma"]) + "\n")
    docs = list(iter_documents(resolve_sources([f"hf:{d}"]), ReadStats()))
    assert docs == [["alpha", "beta"], ["gamma"]]


def test_builtin_corpus_is_deterministic_and_prose():
    first = list(builtin_documents(max_chars=20_000))
    assert first == list(builtin_documents(max_chars=20_000))
    assert len(first) >= 2 and sum(len(line) for doc in first for line in doc) >= 20_000
    assert all(line.strip() == line and line for doc in first for line in doc)


def test_cache_reuse_and_invalidation(tmp_path, vocab, corpus):
    tok = load_tokenizer(vocab)
    out, reused = build_or_reuse([str(corpus)], tok, 32, tmp_path / "ds")
    assert not reused
    stamp = (out / "tokens.bin").stat().st_mtime_ns
    out, reused = build_or_reuse([str(corpus)], tok, 32, tmp_path / "ds")
    assert reused and (out / "tokens.bin").stat().st_mtime_ns == stamp
    before = list(read_examples(out))
    with pytest.raises(ElectraError, match="max_length"):
        prepare_corpus([str(corpus)], tok, 64, out)
    other_vocab = write_vocab(tmp_path / "other.txt", specials=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "zz"))
    with pytest.raises(ElectraError, match="tokenizer"):
        prepare_corpus([str(corpus)], load_tokenizer(other_vocab), 32, out)
    with pytest.raises(ElectraError, match="seed"):
        prepare_corpus([str(corpus)], tok, 32, out, seed=3)
    corpus.write_text(corpus.read_text().replace("the", "a"))  # same name, new content
    with pytest.raises(ElectraError, match="sources"):
        prepare_corpus([str(corpus)], tok, 32, out)
    assert list(read_examples(out)) == before  # refusals leave the dataset intact
    out, reused = build_or_reuse([str(corpus)], tok, 32, out, overwrite=True)
    assert not reused and list(read_examples(out)) != before


def test_interrupted_build_is_never_taken_for_complete(tmp_path, vocab, corpus, monkeypatch):
    tok = load_tokenizer(vocab)
    out = tmp_path / "ds"
    calls = []

    def failing_write(self, *args):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module.ExampleWriter, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus([str(corpus)], tok, 32, out, chunk_chars=300)
    assert calls and not out.exists()  # nothing left behind
    monkeypatch.undo()
    good = prepare_corpus([str(corpus)], tok, 32, out)
    before = list(read_examples(good))
    # a failing rebuild over a complete dataset leaves it as it was
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe broken\n")
    with pytest.raises(ElectraError, match="byte offset 5"):
        prepare_corpus([str(bad)], tok, 32, out, overwrite=True)
    assert list(read_examples(out)) == before and not list(out.glob(".partial-*"))
    # a crash between removing meta.json and writing the new one: the next run rebuilds instead of reusing
    (out / "meta.json").unlink()
    with pytest.raises(ElectraError, match="not a prepared dataset"):
        load_dataset_meta(out)
    out2, reused = build_or_reuse([str(corpus)], tok, 32, out)
    assert not reused and list(read_examples(out2)) == before


def run_cli(args, capsys):
    code = main(["prepare", "--quiet", *args])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("case", ["missing", "empty", "bad_bytes", "bad_vocab", "short", "foreign_out"])
def test_bad_input_gives_one_clear_line(case, tmp_path, vocab, corpus, capsys):
    out = tmp_path / "out"
    args = ["--corpus", str(corpus), "--vocab", str(vocab), "--out", str(out)]
    expected = {
        "missing": "corpus path .*nope.txt does not exist",
        "empty": "contains no text",
        "bad_bytes": r"bad.txt: invalid UTF-8 at byte offset 8 \(pass --skip-bad-lines",
        "bad_vocab": r"lacks the special token\(s\) \[MASK\]",
        "short": r"max length must be an integer in \[5, ",
        "foreign_out": r"holds other files \(notes.txt\)",
    }[case]
    if case == "missing":
        args[1] = str(tmp_path / "nope.txt")
    elif case == "empty":
        (tmp_path / "empty.txt").write_text("\n  \n\n")
        args[1] = str(tmp_path / "empty.txt")
    elif case == "bad_bytes":
        (tmp_path / "bad.txt").write_bytes(b"ok line\n\xc3\x28 bad\nmore\n")
        args[1] = str(tmp_path / "bad.txt")
    elif case == "bad_vocab":
        args[3] = str(write_vocab(tmp_path / "v2.txt", specials=("[PAD]", "[UNK]", "[CLS]", "[SEP]")))
    elif case == "short":
        args += ["--max-length", "4"]
    elif case == "foreign_out":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    code, err = run_cli(args, capsys)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("electra prepare: error: ")
    assert re.search(expected, err), err
    if case == "foreign_out":
        assert (out / "notes.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    else:
        assert not out.exists()


def test_skip_bad_lines_counts_them(tmp_path, vocab, capsys):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"the man\n\xc3\x28 bad\nthe day\n\nwork\n")
    code = main(
        [
            "prepare",
            "--quiet",
            "--corpus",
            str(path),
            "--vocab",
            str(vocab),
            "--out",
            str(tmp_path / "o"),
            "--max-length",
            "16",
            "--skip-bad-lines",
        ]
    )
    assert code == 0
    meta = load_dataset_meta(tmp_path / "o")
    assert meta["skipped_lines"] == 1 and meta["num_documents"] == 2  # the bad line does not end a document
    assert "skipped 1 lines" in capsys.readouterr().out


def test_cli_summary(tmp_path, vocab, corpus, capsys):
    args = [
        "prepare",
        "--quiet",
        "--corpus",
        str(corpus),
        "--vocab",
        str(vocab),
        "--max-length",
        "32",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(args) == 0
    meta = load_dataset_meta(tmp_path / "o")
    printed = capsys.readouterr().out
    assert f"documents {meta['num_documents']:,}  examples {meta['num_examples']:,}" in printed
    assert f"padding {100 * meta['padding_fraction']:.1f} %" in printed and printed.startswith("wrote")
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("reused")


@pytest.mark.slow
def test_builtin_corpus_prepares_offline(tmp_path, vocab):
    out = prepare_corpus(["builtin"], load_tokenizer(vocab), 64, tmp_path / "smoke")
    meta = load_dataset_meta(out)
    assert meta["num_examples"] > 1000 and meta["sources"][0]["kind"] == "builtin"
    _, reused = build_or_reuse(["builtin"], load_tokenizer(vocab), 64, out)
    assert reused


@pytest.mark.parametrize("flag", ["--force", "--overwrite"])
def test_force_replaces_a_dataset_and_overwrite_is_its_hidden_alias(flag, tmp_path, vocab, corpus, capsys):
    args = ["prepare", "--quiet", "--corpus", str(corpus), "--vocab", str(vocab), "--max-length", "32"]
    assert main([*args, "--out", str(tmp_path / "ds")]) == 0
    assert main([*args, "--seed", "3", "--out", str(tmp_path / "ds")]) == 2
    assert "pass --force to replace it" in capsys.readouterr().err
    assert main([*args, "--seed", "3", "--out", str(tmp_path / "ds"), flag]) == 0
    assert load_dataset_meta(tmp_path / "ds")["seed"] == 3
    help_text = cli.build_parser(["prepare"])._subparsers._group_actions[0].choices["prepare"].format_help()
    assert "--force" in help_text and "--overwrite" not in help_text


def test_a_line_without_line_breaks_is_cut_into_pieces_and_counted(tmp_path, vocab, capsys):
    from electra.data.sources import LONG_LINE_CHARS, PIECE_CHARS, cut_long_lines

    words = [w for doc in random_documents(3, 20) for line in doc for w in line.split()]
    text = " ".join(words)
    line = (text + " ") * (LONG_LINE_CHARS // len(text) + 2)  # over a million characters, no newline
    stats = ReadStats()
    pieces = cut_long_lines(["short line", line], stats)
    assert stats.long_lines == 1 and pieces[0] == "short line"
    assert all(0 < len(p) <= PIECE_CHARS for p in pieces[1:])
    assert " ".join(pieces[1:]).split() == line.split()  # every word kept, none cut in two
    path = tmp_path / "one_line.txt"
    path.write_text(line)  # the whole file is one line
    assert main(["prepare", "--corpus", str(path), "--vocab", str(vocab), "--out", str(tmp_path / "o")]) == 0
    meta = load_dataset_meta(tmp_path / "o")
    # the official builder would make one example of the line's first 128 tokens; its pieces fill many
    assert meta["long_lines"] == 1 and meta["num_examples"] > 1000
    assert "cut 1 line(s) of over 1,000,000 characters" in capsys.readouterr().out
