"""One way to name a model everywhere: a pretraining run directory, an HF-format directory, or a hub id.

`is_run_dir` is re-exported from `electra.checkpoint`, which defines the run layout."""

from __future__ import annotations

import os

from torch import nn

from electra.checkpoint import is_run_dir, load_run
from electra.errors import ElectraError
from electra.hf import Kind, load_hf
from electra.tokenizer import WordPiece, load_tokenizer


def load_model(source: str | os.PathLike, kind: Kind = "discriminator", checkpoint: str = "latest"
               ) -> tuple[nn.Module, WordPiece]:  # fmt: skip
    """The discriminator, generator or bare encoder named by `source`, in eval mode, with its tokenizer."""
    if is_run_dir(source):
        model, _, tokenizer = load_run(source, checkpoint)
        if kind == "discriminator":
            module = model.discriminator
        elif kind == "generator":
            module = model.generator
        else:
            module = model.discriminator.electra if hasattr(model, "discriminator") else model.generator.electra
        return module.eval(), tokenizer
    module = load_hf(source, kind)
    try:
        tokenizer = load_tokenizer(source)
    except ElectraError as err:
        raise ElectraError(f"model {source} has no usable tokenizer: {err}") from None
    if tokenizer.vocab_size != module.config.vocab_size:
        raise ElectraError(
            f"model {source}: tokenizer has {tokenizer.vocab_size} tokens but the model expects "
            f"{module.config.vocab_size}"
        )
    return module, tokenizer
