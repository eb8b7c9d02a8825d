"""Replaced-token detection as small pure functions (docs/faithfulness.md §3).

mask_tokens -> generator logits at the masked slots -> sample_replacements -> replace_tokens (fake input and
labels) -> generator_loss + discriminator_loss. Randomness comes only from the `torch.Generator` passed in, so a
step is reproducible from its seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from electra.tokenizer import WordPiece


class SpecialIds(NamedTuple):
    pad: int = 0
    unk: int = 100
    cls: int = 101
    sep: int = 102
    mask: int = 103

    @classmethod
    def from_tokenizer(cls, tok: WordPiece) -> SpecialIds:
        return cls(pad=tok.pad_id, unk=tok.unk_id, cls=tok.cls_id, sep=tok.sep_id, mask=tok.mask_id)


class Masked(NamedTuple):
    input_ids: Tensor  # (B, L) the corrupted input the generator reads
    positions: Tensor  # (B, N) selected positions; unused slots point at 0
    weights: Tensor  # (B, N) float 1.0 for used slots, 0.0 otherwise
    targets: Tensor  # (B, N) original ids at the positions (0 in unused slots)


def is_any(ids: Tensor, values: tuple[int, ...]) -> Tensor:
    """ids == v for any v: `torch.isin` without copying the values to the GPU (a copy from pageable host memory
    waits for the GPU to finish its queue, once per step)."""
    out = ids == values[0]
    for v in values[1:]:
        out |= ids == v
    return out


def num_to_mask(num_tokens: Tensor, mask_prob: float, max_predictions: int) -> Tensor:
    """k = max(1, min(N, round_half_even(float32(n) * float32(p)))) with n counting [CLS]/[SEP] (faithfulness §3.1)."""
    product = num_tokens.to(torch.float32) * torch.tensor(mask_prob, dtype=torch.float32)
    return product.round().long().clamp(min=1, max=max_predictions)  # torch.round is half-to-even


def _corrupt(
    input_ids: Tensor,
    positions: Tensor,
    weights: Tensor,
    mask_id: int,
    mask_token_prob: float,
    random_token_prob: float,
    vocab_size: int,
    rng: torch.Generator | None,
) -> Tensor:
    """Per slot: [MASK] with mask_token_prob, a random token with random_token_prob, else unchanged.

    Like the official scatter, writes to position 0 are ignored (unused slots point there), and a position drawn
    twice becomes [MASK] if either of its slots says so.
    """
    u = torch.rand(positions.shape, generator=rng, device=positions.device)
    used = weights > 0
    corrupted = input_ids.clone()
    if random_token_prob > 0:
        rand_slot = used & (u >= mask_token_prob) & (u < mask_token_prob + random_token_prob)
        random_ids = torch.randint(vocab_size, positions.shape, generator=rng, device=positions.device)
        corrupted.scatter_(1, torch.where(rand_slot, positions, 0), random_ids)
    corrupted.scatter_(1, torch.where(used & (u < mask_token_prob), positions, 0), mask_id)
    corrupted[:, 0] = input_ids[:, 0]
    return corrupted


def mask_tokens(
    input_ids: Tensor,
    attention_mask: Tensor,
    mask_prob: float,
    max_predictions: int,
    special: SpecialIds,
    *,
    mask_token_prob: float = 0.85,
    random_token_prob: float = 0.0,
    vocab_size: int = 0,
    rng: torch.Generator | None = None,
) -> Masked:
    """The official masking: k slots of N drawn *with replacement*, uniformly over real tokens that are not
    [CLS]/[SEP]/[MASK] ([UNK] can be masked)."""
    N = max_predictions
    candidates = attention_mask.bool() & ~is_any(input_ids, (special.cls, special.sep, special.mask))  # (B, L)
    k = num_to_mask(attention_mask.sum(1), mask_prob, N)  # (B,)
    weights = (torch.arange(N, device=input_ids.device)[None, :] < k[:, None]).float()  # (B, N)
    has_candidate = candidates.any(1)
    probs = candidates.float()
    # a row with nothing maskable draws position 0 with weight 0 (not `probs[~has, 0] = 1`: a boolean index waits
    # for the GPU)
    probs[:, 0] = torch.where(has_candidate, probs[:, 0], 1.0)
    weights = weights * has_candidate[:, None]
    positions = torch.multinomial(probs, N, replacement=True, generator=rng) * weights.long()  # (B, N)
    targets = input_ids.gather(1, positions) * weights.long()
    corrupted = _corrupt(
        input_ids, positions, weights, special.mask, mask_token_prob, random_token_prob, vocab_size, rng
    )
    return Masked(corrupted, positions, weights, targets)


def mask_tokens_bernoulli(
    input_ids: Tensor,
    attention_mask: Tensor,
    mask_prob: float,
    special: SpecialIds,
    *,
    mask_token_prob: float = 0.85,
    random_token_prob: float = 0.0,
    vocab_size: int = 0,
    rng: torch.Generator | None = None,
) -> Masked:
    """richarddwang/electra_pytorch's masking: each real, non-special token (here [UNK] is special too) is
    selected independently with probability mask_prob; no cap, no minimum, no duplicates."""
    candidates = attention_mask.bool() & ~is_any(input_ids, tuple(special))
    selected = candidates & (torch.rand(input_ids.shape, generator=rng, device=input_ids.device) < mask_prob)
    counts = selected.sum(1)
    N = max(int(counts.max()), 1)
    order = torch.sort(selected.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :N]
    weights = (torch.arange(N, device=input_ids.device)[None, :] < counts[:, None]).float()
    positions = order * weights.long()
    targets = input_ids.gather(1, positions) * weights.long()
    corrupted = _corrupt(
        input_ids, positions, weights, special.mask, mask_token_prob, random_token_prob, vocab_size, rng
    )
    return Masked(corrupted, positions, weights, targets)


def sample_replacements(
    logits: Tensor,
    temperature: float = 1.0,
    method: str = "gumbel",
    rng: torch.Generator | None = None,
    disallow: Tensor | None = None,
    noise: Tensor | None = None,
) -> Tensor:
    """Sample one token per slot from softmax(logits / T), in fp32 whatever the autocast dtype.

    gumbel: argmax(logits/T + g), g = -log(-log(u + 1e-9) + 1e-9), as the official code; `noise`: u, if drawn
    beforehand (uniform, the logits' shape). multinomial: direct sampling. `disallow`: ids to push down by 1000
    (the official `disallow_correct`)."""
    logits = logits.float() / temperature
    if disallow is not None:
        logits = logits - 1000.0 * F.one_hot(disallow, logits.shape[-1]).to(logits.dtype)
    if method == "gumbel":
        u = torch.rand(logits.shape, generator=rng, device=logits.device) if noise is None else noise
        return (logits - torch.log(-torch.log(u + 1e-9) + 1e-9)).argmax(-1)
    if method == "multinomial":
        probs = logits.softmax(-1).reshape(-1, logits.shape[-1])
        return torch.multinomial(probs, 1, generator=rng).view(logits.shape[:-1])
    raise ValueError(f"unknown sampling method {method!r}")


def replace_tokens(
    input_ids: Tensor, attention_mask: Tensor, positions: Tensor, weights: Tensor, sampled: Tensor
) -> tuple[Tensor, Tensor]:
    """Write the samples into the *original* ids at every selected position; label = selected and changed.

    A position drawn twice receives (a + b) // 2 as in the official scatter (sum, then floor-divide by the count),
    which also makes the result deterministic.
    """
    w = weights.long()
    sums = torch.zeros_like(input_ids).scatter_add_(1, positions, sampled * w)
    counts = torch.zeros_like(input_ids).scatter_add_(1, positions, w)
    selected = counts > 0
    fake = torch.where(selected, sums // counts.clamp(min=1), input_ids)
    labels = selected & (fake != input_ids) & attention_mask.bool()
    return fake, labels


def generator_loss(
    logits: Tensor, targets: Tensor, weights: Tensor, label_smoothing: float = 0.0, total_weight: Tensor | None = None
) -> Tensor:
    """sum(w * nll) / (sum(w) + 1e-6) over the batch and all slots (docs/faithfulness.md §3.2).

    `total_weight` replaces sum(w) when this batch is one micro-batch of a larger (global) batch: pass the sum of
    the weights over the whole global batch, and the micro-batch losses add up to the full batch's loss."""
    V = logits.shape[-1]
    nll = F.cross_entropy(
        logits.float().reshape(-1, V), targets.reshape(-1), reduction="none", label_smoothing=label_smoothing
    )
    total = weights.sum() if total_weight is None else total_weight
    return (nll * weights.reshape(-1)).sum() / (total + 1e-6)


def discriminator_loss(
    logits: Tensor,
    labels: Tensor,
    attention_mask: Tensor,
    label_smoothing: float = 0.0,
    total_tokens: Tensor | None = None,
) -> Tensor:
    """Sigmoid cross-entropy averaged over every real token in the batch, [CLS]/[SEP] included (faithfulness §3.4).

    `total_tokens` replaces the batch's token count for a micro-batch of a larger batch (see `generator_loss`)."""
    targets = labels.float()
    if label_smoothing:
        targets = targets * (1 - label_smoothing) + 0.5 * label_smoothing
    per_token = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")
    w = attention_mask.float()
    total = w.sum() if total_tokens is None else total_tokens
    return (per_token * w).sum() / (total + 1e-6)


def unigram_log_probs(token_counts: Tensor) -> Tensor:
    """log p(token) (float64) under the add-one smoothed unigram distribution of `token_counts` (V,): the
    generator's prior (`electra.init.init_output_biases`), and, negated, the rarity score of a replaced-token detector
    that knows word frequencies and nothing else (`electra.train.step.evaluate`)."""
    counts = torch.as_tensor(token_counts, dtype=torch.float64) + 1
    return torch.log(counts / counts.sum())


def weighted_accuracy(pred: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    return ((pred == target).float() * weights).sum() / weights.sum().clamp(min=1e-6)


def discriminator_metrics(logits: Tensor, labels: Tensor, attention_mask: Tensor) -> dict[str, Tensor]:
    """Accuracy of "replaced" over real tokens (a logit of exactly 0 predicts original) and the replaced share;
    precision, recall and AUC are computed over the whole held-out set (`electra.train.step.evaluate`)."""
    real = attention_mask.bool()
    pred = (logits > 0) & real
    truth = labels & real
    n_real = real.sum().clamp(min=1).float()
    return {
        "accuracy": ((pred == truth) & real).sum().float() / n_real,
        "replaced_fraction": truth.sum().float() / n_real,
    }
