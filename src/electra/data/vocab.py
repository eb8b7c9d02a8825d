"""`electra vocab`: train a WordPiece vocabulary on a corpus, BERT-style normalisation, the five special tokens
first ([PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4); `load_tokenizer(dir)` and `prepare --vocab DIR` read it."""

from __future__ import annotations

from collections.abc import Iterator

from tokenizers.implementations import BertWordPieceTokenizer

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
    pieces = continuing_pieces(bert, lines())
    if stats.documents == 0:
        raise ElectraError(f"corpus {' '.join(sources)} contains no text")
    if len(SPECIAL_TOKENS) + len(pieces) >= vocab_size:
        raise ElectraError(
            f"vocabulary size {vocab_size} leaves no room for merges: the corpus has {len(pieces)} characters that "
            f"continue words; give --size above {len(SPECIAL_TOKENS) + len(pieces)}"
        )
    bert.train_from_iterator(
        lines(),
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[*SPECIAL_TOKENS, *pieces],
        show_progress=False,
    )
    # the trainer's vocabulary, with only the five special tokens special (the pieces were listed only for their ids)
    vocab = bert.get_vocab()
    plain = BertWordPieceTokenizer(vocab, clean_text=True, strip_accents=None, lowercase=not cased)
    return WordPiece(plain._tokenizer, lowercase=not cased, source="trained")


def continuing_pieces(bert: BertWordPieceTokenizer, lines: Iterator[str]) -> list[str]:
    """`##c` for every character c that continues a word of the corpus, sorted: listed up front they get fixed
    numbers, which makes the trainer deterministic (huggingface/tokenizers#1794)."""
    backend = bert._tokenizer
    chars: set[str] = set()
    for line in lines:
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(line)):
            chars.update(word[1:])
    return ["##" + c for c in sorted(chars)]
