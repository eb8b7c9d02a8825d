"""The WordPiece tokenizer every workflow shares: BERT uncased by default, Rust-backed; `load_tokenizer` reads a
`vocab.txt` file, a tokenizer or Hugging Face model directory, or a hub id."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer as _RustTokenizer
from tokenizers.implementations import BertWordPieceTokenizer

from electra.errors import ElectraError

if TYPE_CHECKING:
    import torch

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_INPUT_CHARS_PER_WORD = 200  # longer words become [UNK] (BERT/ELECTRA tokenization.py; `tokenizers` defaults to 100)


class WordPiece:
    """A thin wrapper over a `tokenizers.Tokenizer` that knows the ELECTRA special-token ids."""

    def __init__(self, tokenizer: _RustTokenizer, lowercase: bool = True, source: str = "?"):
        self.backend = tokenizer
        self.backend.no_truncation()
        self.backend.no_padding()
        if hasattr(self.backend.model, "max_input_chars_per_word"):
            self.backend.model.max_input_chars_per_word = MAX_INPUT_CHARS_PER_WORD
        self.lowercase = lowercase
        self.source = source
        vocab = tokenizer.get_vocab()
        check_special_tokens(vocab, source)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (vocab[t] for t in SPECIAL_TOKENS)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def vocab(self) -> list[str]:
        """Tokens in id order."""
        by_id = sorted(self.backend.get_vocab().items(), key=lambda kv: kv[1])
        return [token for token, _ in by_id]

    def encode(self, text: str) -> list[int]:
        """WordPiece ids of `text` without [CLS]/[SEP]."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=False)]

    def convert_ids_to_tokens(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        return [self.backend.id_to_token(int(i)) for i in ids]

    def fingerprint(self) -> str:
        """Identifies the vocabulary and normalisation; stored with data and checkpoints to refuse mismatches."""
        h = hashlib.sha256("\n".join(self.vocab()).encode())
        h.update(b"lower" if self.lowercase else b"cased")
        return h.hexdigest()[:16]

    def save(self, directory: str | os.PathLike) -> None:
        """Write `vocab.txt`, `tokenizer.json` and a `tokenizer_config.json` transformers understands."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "vocab.txt").write_text("\n".join(self.vocab()) + "\n", encoding="utf-8")
        self.backend.save(str(directory / "tokenizer.json"))
        config = {"tokenizer_class": "ElectraTokenizer", "do_lower_case": self.lowercase, "strip_accents": None}
        config |= {"tokenize_chinese_chars": True, "model_max_length": 512}
        config |= {f"{name}_token": f"[{name.upper()}]" for name in ("unk", "sep", "pad", "cls", "mask")}
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def check_special_tokens(vocab: dict[str, int], source: str) -> None:
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise ElectraError(
            f"vocabulary {source} lacks the special token(s) {', '.join(missing)}; a BERT-style vocab.txt has "
            f"{', '.join(SPECIAL_TOKENS)} (electra vocab writes one)"
        )


def from_vocab_file(path: str | os.PathLike, lowercase: bool = True) -> WordPiece:
    path = Path(path)
    if not path.is_file():
        raise ElectraError(f"vocabulary file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ElectraError(f"vocabulary file {path} is not UTF-8 text ({err})") from None
    if not lines:
        raise ElectraError(f"vocabulary file {path} is empty; expected one WordPiece token per line")
    vocab = {token: i for i, token in enumerate(lines)}
    check_special_tokens(vocab, str(path))  # before `tokenizers`, which fails on a missing one with a TypeError
    bert = BertWordPieceTokenizer(vocab, lowercase=lowercase, strip_accents=None, clean_text=True)
    return WordPiece(bert._tokenizer, lowercase=lowercase, source=str(path))


def load_tokenizer(source: str | os.PathLike, lowercase: bool | None = None) -> WordPiece:
    """A tokenizer from a vocab file, a model/run directory, or a hub id."""
    path = Path(source)
    if path.is_file():
        return from_vocab_file(path, lowercase=True if lowercase is None else lowercase)
    if path.is_dir():
        for sub in (path, path / "tokenizer"):
            config_file = sub / "tokenizer_config.json"
            if lowercase is None and config_file.is_file():
                lowercase = bool(json.loads(config_file.read_text()).get("do_lower_case", True))
            if (sub / "tokenizer.json").is_file():
                tok = _RustTokenizer.from_file(str(sub / "tokenizer.json"))
                return WordPiece(tok, lowercase=True if lowercase is None else lowercase, source=str(sub))
            if (sub / "vocab.txt").is_file():
                return from_vocab_file(sub / "vocab.txt", lowercase=True if lowercase is None else lowercase)
        raise ElectraError(f"directory {path} has no tokenizer (expected tokenizer.json or vocab.txt)")
    if str(source).count("/") == 1 and not str(source).startswith((".", "/")):
        return _from_hub(str(source), lowercase)
    raise ElectraError(f"tokenizer {source} not found: expected a vocab.txt file, a directory or a hub id")


def _from_hub(model_id: str, lowercase: bool | None) -> WordPiece:
    from electra import hub

    hub.require(model_id, "tokenizer")
    try:
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(model_id)
    except Exception as err:  # hub unreachable, id unknown, ...
        raise ElectraError(f"could not load tokenizer {model_id!r} from the hub: {err}") from None
    do_lower = getattr(hf, "do_lower_case", True) if lowercase is None else lowercase
    return WordPiece(hf.backend_tokenizer, lowercase=do_lower, source=model_id)
