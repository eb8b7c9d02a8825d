"""`electra vocab`: train a WordPiece vocabulary on a corpus (for a new domain or language).

BERT-style normalisation (clean text, CJK spacing, lowercasing and accent stripping unless `--cased`) and the five
special tokens first: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4. The output directory is what
`electra.tokenizer.load_tokenizer(dir)` and `electra prepare --vocab DIR` read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from tokenizers.implementations import BertWordPieceTokenizer

from electra import io
from electra.data.sources import ReadStats, iter_documents, resolve_sources
from electra.errors import ElectraError
from electra.tokenizer import SPECIAL_TOKENS, WordPiece


def train_vocab(
    sources: list[str],
    vocab_size: int = 30522,
    cased: bool = False,
    min_frequency: int = 2,
    skip_bad_lines: bool = False,
    text_field: str = "text",
) -> WordPiece:
    """A WordPiece tokenizer trained on every line of `sources`."""
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ElectraError(f"vocabulary size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
    srcs = resolve_sources(sources)
    stats = ReadStats()

    def lines() -> Iterator[str]:
        for doc in iter_documents(srcs, stats, skip_bad_lines=skip_bad_lines, text_field=text_field):
            yield from doc

    bert = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=not cased)
    bert.train_from_iterator(
        lines(),
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    if stats.documents == 0:
        raise ElectraError(f"corpus {' '.join(sources)} contains no text")
    return WordPiece(bert._tokenizer, lowercase=not cased, source="trained")


def add_vocab_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", nargs="+", required=True, metavar="SRC", help="corpus sources, as for prepare")
    parser.add_argument("--size", type=int, default=30522, help="vocabulary size (default 30522, as BERT)")
    parser.add_argument("--cased", action="store_true", help="keep case and accents (default: lowercase + strip)")
    parser.add_argument("--min-frequency", type=int, default=2, help="least count of a merged piece (default 2)")
    parser.add_argument("--skip-bad-lines", action="store_true", help="skip lines that are not valid UTF-8")
    parser.add_argument("--text-field", default="text", help="text field of .jsonl rows / datasets")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for vocab.txt + tokenizer.json")
    parser.add_argument("--force", dest="overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--overwrite", dest="overwrite", action="store_true", help=argparse.SUPPRESS)  # older name


def run_vocab(args: argparse.Namespace) -> int:
    tokenizer = train_vocab(
        args.corpus, args.size, args.cased, args.min_frequency, args.skip_bad_lines, args.text_field
    )
    io.write_dir(Path(args.out), tokenizer.save, force=args.overwrite)
    print(
        f"wrote {args.out}: {tokenizer.vocab_size} tokens ({'cased' if args.cased else 'uncased'}), "
        f"fingerprint {tokenizer.fingerprint()}",
        file=sys.stdout,
    )
    return 0
