from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_vocab(tmp_path) -> Path:
    """A small WordPiece vocab written by the test (specials at BERT's relative order)."""
    words = "the a cat dog sat on mat is was big small red blue and or not it he she they we you i".split(" ")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(".,!?'") + words + ["##s", "##ed", "##ing"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n")
    return path
