"""Layer-wise learning-rate decay for finetuning on Hugging Face-style parameter names (docs/faithfulness.md §5.3):
`official` (the official code's numbering: the top layer gets decay^2) or `paper` (the head 1, the top layer
decay^1)."""

from __future__ import annotations

import re
from typing import Literal

from electra.errors import ElectraError

LayerDecayMode = Literal["official", "paper"]

_LAYER = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")
_EMBEDDINGS = re.compile(r"(?:^|\.)(?:embeddings|embeddings_project)\.")


def layer_depth(name: str, num_layers: int, head_prefixes: tuple[str, ...] = ("classifier.",)) -> int:
    """0 for embeddings, i+1 for encoder layer i, n+2 for the task head; an unmatched name is an error."""
    m = _LAYER.search(name)
    if m:
        i = int(m.group(1))
        if i >= num_layers:
            raise ElectraError(f"parameter {name} is in layer {i} but the encoder has {num_layers} layers")
        return i + 1
    if _EMBEDDINGS.search(name):
        return 0
    if name.startswith(head_prefixes):
        return num_layers + 2
    raise ElectraError(f"parameter {name} matches no layer-wise learning-rate group (embeddings, encoder layer, head)")


def layer_lr_multiplier(depth: int, num_layers: int, decay: float, mode: LayerDecayMode = "official") -> float:
    if mode == "official":
        return decay ** (num_layers + 2 - depth)
    if mode == "paper":
        return 1.0 if depth == num_layers + 2 else decay ** (num_layers + 1 - depth)
    raise ElectraError(f"layer-wise decay mode must be 'official' or 'paper', got {mode!r}")


def layer_lr_multipliers(
    names: list[str],
    num_layers: int,
    decay: float,
    mode: LayerDecayMode = "official",
    head_prefixes: tuple[str, ...] = ("classifier.",),
) -> dict[str, float]:
    """{parameter name: learning-rate multiplier}; decay 1.0 switches layer-wise decay off."""
    return {n: layer_lr_multiplier(layer_depth(n, num_layers, head_prefixes), num_layers, decay, mode) for n in names}
