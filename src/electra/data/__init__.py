"""Pretraining data: corpus readers, the official ExampleBuilder, the on-disk format and the training loader
(docs/data.md). Names are imported on first use, so worker processes of `prepare` do not import torch."""

import importlib
from typing import Any

_EXPORTS = {
    "PretrainLoader": "electra.data.loader",
    "prepare_corpus": "electra.data.prepare",
    "read_examples": "electra.data.store",
    "load_dataset_meta": "electra.data.store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'electra.data' has no attribute {name!r}")
