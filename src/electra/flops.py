"""Training FLOPs counted as the ELECTRA paper does (official `flops_computation.py`), its conventions and quirks
kept so that the paper's totals are reproduced (docs/faithfulness.md §7)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from electra.config import ModelConfig, PretrainConfig

if TYPE_CHECKING:
    from torch import nn

DROPOUT, LAYER_NORM, GELU, SOFTMAX = 4, 5, 8, 5
OUTPUT_FRAC = 0.15625  # 20 of 128 positions run the MLM softmax in the paper's count


@dataclass(frozen=True)
class EncoderShape:
    hidden: int
    layers: int
    seq_len: int
    vocab: int = 30522
    embedding: int | None = None  # None: = hidden
    intermediate: int | None = None  # None: 4 · hidden
    heads: int | None = None  # None: max(1, hidden // 64)

    @property
    def e(self) -> int:
        return self.hidden if self.embedding is None else self.embedding

    @property
    def i(self) -> int:
        return 4 * self.hidden if self.intermediate is None else self.intermediate

    @property
    def n_heads(self) -> int:
        return max(1, self.hidden // 64) if self.heads is None else self.heads

    @classmethod
    def of(cls, cfg: ModelConfig, seq_len: int, embedding: int | None = None) -> EncoderShape:
        size = (cfg.hidden_size, cfg.num_hidden_layers, seq_len, cfg.vocab_size)
        embedding = embedding if embedding is not None else cfg.embedding_size
        return cls(*size, embedding, cfg.intermediate_size, cfg.num_attention_heads)


def block_flops(m: EncoderShape, faithful: bool = True) -> float:
    """Forward FLOPs of one post-LN transformer block over a whole sequence."""
    h, s, i, nh = m.hidden, m.seq_len, m.i, m.n_heads
    attention = (
        3 * (2 * h * h + h)  # query, key, value projections and biases
        + 2 * h * s  # scores q·k over s keys
        + (SOFTMAX + DROPOUT + 1) * s * nh  # softmax, dropout and 1/sqrt(d) scaling of the scores
        + 2 * h * s  # probabilities · values
        + (2 * h * h + h + DROPOUT * h + h)  # output dense, bias, dropout, residual
        + LAYER_NORM * (1 if faithful else h)  # the official count's missing factor h
    )
    feed_forward = (
        (2 * h * i + i + GELU * i)  # intermediate dense, bias, GELU
        + (2 * i * h + h + DROPOUT * h + h)  # output dense, bias, dropout, residual
        + LAYER_NORM * h
    )
    return (attention + feed_forward) * s


def input_embedding_flops(m: EncoderShape) -> float:
    """One-hot word lookup, position and token-type tables, their sum, LayerNorm, dropout, E→H projection."""
    e, h = m.e, m.hidden
    per_token = 2 * e * m.vocab + 2 * e * (m.seq_len + 2) + 2 * e + LAYER_NORM * e + DROPOUT * e
    if e != h:
        per_token += 2 * h * e + h
    return per_token * m.seq_len


def mlm_head_flops(m: EncoderShape, output_frac: float = OUTPUT_FRAC) -> float:
    """dense H→E + bias + GELU + LayerNorm, then E→V logits, softmax and target, on a fraction of positions."""
    e, v = m.e, m.vocab
    per_token = 2 * m.hidden * e + e + GELU * e + LAYER_NORM * e + 2 * e * v + SOFTMAX * v + 2 * v
    return output_frac * per_token * m.seq_len


def binary_head_flops(m: EncoderShape) -> float:
    """The discriminator head: dense H→H + bias + GELU, then H→1, at every position."""
    h = m.hidden
    return (2 * h * h + h + GELU * h + 2 * h) * m.seq_len


def forward_flops(m: EncoderShape, head: str, output_frac: float = OUTPUT_FRAC, faithful: bool = True) -> float:
    """Forward FLOPs of one sequence through embeddings, `layers` blocks and the `mlm` or `binary` head."""
    top = binary_head_flops(m) if head == "binary" else mlm_head_flops(m, output_frac)
    return m.layers * block_flops(m, faithful) + input_embedding_flops(m) + top


def cloze_forward_flops(gen: EncoderShape, faithful: bool = True) -> float:
    """Forward FLOPs of Electric's two-tower cloze generator on one sequence: two towers of `gen`'s shape, and the
    cloze head on the joined states (width 2·H_g) at every position."""
    tower = gen.layers * block_flops(gen, faithful) + input_embedding_flops(gen)
    return 2 * tower + mlm_head_flops(replace(gen, hidden=2 * gen.hidden), 1.0)


def electra_train_flops(
    disc: EncoderShape | None,
    gen: EncoderShape,
    batch_size: int,
    steps: float,
    output_frac: float = OUTPUT_FRAC,
    faithful: bool = True,
) -> float:
    """Training FLOPs of ELECTRA (generator + discriminator) or, with `disc=None`, of the MLM model alone:
    2 (forward + equal backward) · batch · steps · forward FLOPs per sequence."""
    per_seq = forward_flops(gen, "mlm", output_frac, faithful)
    if disc is not None:
        per_seq += forward_flops(disc, "binary", output_frac, faithful)
    return 2 * batch_size * steps * per_seq


def train_flops_per_sequence(cfg: PretrainConfig, seq_len: int | None = None, faithful: bool = True) -> float:
    """Training FLOPs (forward + backward, paper convention) for one sequence of the configured model."""
    s = cfg.max_length if seq_len is None else seq_len
    if cfg.objective == "mlm":
        return electra_train_flops(None, EncoderShape.of(cfg.model, s), 1, 1, faithful=faithful)
    disc = EncoderShape.of(cfg.model, s)
    gen = EncoderShape.of(cfg.generator_model, s, embedding=cfg.model.embedding_size)  # tied embeddings
    if cfg.objective == "replace-mlm":
        return 2 * (forward_flops(gen, "mlm", faithful=faithful) + forward_flops(disc, "mlm", faithful=faithful))
    if cfg.objective == "electric":
        return 2 * (cloze_forward_flops(gen, faithful) + forward_flops(disc, "binary", faithful=faithful))
    if cfg.objective == "all-tokens-mlm":
        everywhere = forward_flops(disc, "mlm", 1.0, faithful) + binary_head_flops(disc)
        return 2 * (forward_flops(gen, "mlm", faithful=faithful) + everywhere)
    return electra_train_flops(disc, gen, 1, 1, faithful=faithful)


def format_flops(x: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f} "


def count_parameters(module: nn.Module) -> int:
    """Parameters counted once even when shared."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())
