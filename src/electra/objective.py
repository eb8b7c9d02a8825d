"""Replaced-token detection as small pure functions (docs/faithfulness.md §3).

mask_tokens -> generator logits at the masked slots -> sample_replacements -> replace_tokens (fake input and
labels) -> generator_loss + discriminator_loss. The paper's efficiency ablations (§3.5) change only the last step:
electra-15 scores the masked-out positions alone (`scored_positions`), replace-mlm and all-tokens-mlm train a masked
LM on the fake input (`masked_lm_on_samples`, with All-Tokens MLM's copy mixture). Randomness comes only from the
`torch.Generator` passed in, so a step is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from electra.tokenizer import WordPiece


# objectives whose full-size model is a discriminator of the generator's samples (electric: Electric's NCE scorer)
RTD = ("electra", "electra-15", "electric")
SAMPLE_MLM = ("replace-mlm", "all-tokens-mlm")  # objectives whose full-size model is a masked LM on those samples


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


def maskable(input_ids: Tensor, attention_mask: Tensor, special: SpecialIds) -> Tensor:
    """(B, L) bool: the real tokens that are not [CLS]/[SEP]/[MASK] (the official `get_candidates_mask`): those the
    official masking may choose, and those Electric's cloze loss covers."""
    return attention_mask.bool() & ~is_any(input_ids, (special.cls, special.sep, special.mask))


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
    candidates = maskable(input_ids, attention_mask, special)  # (B, L)
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


def selected_positions(positions: Tensor, weights: Tensor, length: int) -> Tensor:
    """(B, L) bool: the positions that at least one used slot points at, each once (the paper's set m)."""
    counts = torch.zeros(positions.shape[0], length, dtype=torch.long, device=positions.device)
    return counts.scatter_add_(1, positions, weights.long()) > 0


def scored_positions(objective: str, masked: Masked, attention_mask: Tensor) -> Tensor:
    """(B, L) bool: the tokens the discriminator's loss covers. Every real token (paper §2: L_Disc sums over t = 1
    to n); with electra-15 only the masked-out ones (paper §3.5: "the sum in the discriminator loss L_Disc is over
    i in m instead of from 1 to n"), each position once however many slots drew it."""
    real = attention_mask.bool()
    if objective != "electra-15":
        return real
    return real & selected_positions(masked.positions, masked.weights, real.shape[1])


class LossTotals(NamedTuple):
    """Loss denominators of a whole (global) batch, for computing its loss one micro-batch at a time."""

    gen: Tensor  # sum of the masked-slot weights
    disc: Tensor  # the full-size model's: the tokens it scores (`scored_positions`), or for replace-mlm the slots


def loss_totals(
    objective: str,
    masked: Masked,
    attention_mask: Tensor,
    input_ids: Tensor | None = None,
    special: SpecialIds | None = None,
) -> LossTotals:
    """The denominators of one micro-batch's two losses, to be summed over the global batch (`generator_loss`).
    Electric's cloze loss covers every `maskable` token of `input_ids`, not the masked slots."""
    if objective == "electric":
        if input_ids is None or special is None:
            raise ValueError("loss_totals: objective electric needs input_ids and the special ids")
        return LossTotals(maskable(input_ids, attention_mask, special).sum().float(), attention_mask.sum().float())
    gen = masked.weights.sum()
    if objective == "replace-mlm":  # a masked LM at the masked slots, weighted as the generator's
        return LossTotals(gen, gen)
    return LossTotals(gen, scored_positions(objective, masked, attention_mask).sum().float())


def copy_mixture_log_probs(logits: Tensor, copy_logits: Tensor, input_ids: Tensor, targets: Tensor) -> Tensor:
    """log p(target) at every position under All-Tokens MLM's output distribution (paper §3.5: "The model's output
    distribution puts D weight on the input token plus 1 - D times the output of the MLM softmax"):

        p(x) = D * [x == input token] + (1 - D) * softmax(logits)(x),    D = sigmoid(copy_logits)

    computed in fp32 as log(D [target == input] + (1 - D) q(target)) with log-sigmoids, never dividing by 0."""
    V = logits.shape[-1]
    log_q = -F.cross_entropy(logits.float().reshape(-1, V), targets.reshape(-1), reduction="none")
    c = copy_logits.float()
    from_vocab = F.logsigmoid(-c) + log_q.view(targets.shape)
    copied = torch.where(input_ids == targets, F.logsigmoid(c), float("-inf"))
    return torch.logaddexp(copied, from_vocab)


def copy_mlm_loss(
    logits: Tensor,
    copy_logits: Tensor,
    input_ids: Tensor,
    targets: Tensor,
    attention_mask: Tensor,
    total_tokens: Tensor | None = None,
) -> Tensor:
    """All-Tokens MLM's loss: -log p(original token) under the copy mixture, averaged over every real token of the
    batch (the paper: "the model predicts the identity of all tokens in the input"); `total_tokens` as in
    `discriminator_loss`."""
    nll = -copy_mixture_log_probs(logits, copy_logits, input_ids, targets)
    w = attention_mask.float()
    total = w.sum() if total_tokens is None else total_tokens
    return (nll * w).sum() / (total + 1e-6)


def copy_mixture_predictions(logits: Tensor, copy_logits: Tensor, input_ids: Tensor) -> Tensor:
    """The most probable token under the copy mixture: the input token where D + (1 - D) q(input) >= (1 - D) max q,
    else the softmax's argmax."""
    q = logits.float().softmax(-1)
    top_q, top = q.max(-1)
    d = torch.sigmoid(copy_logits.float())
    copy = d + (1 - d) * q.gather(-1, input_ids[..., None]).squeeze(-1) >= (1 - d) * top_q
    return torch.where(copy, input_ids, top)


def masked_lm_on_samples(
    logits: Tensor,
    copy_logits: Tensor | None,
    masked: Masked,
    fake_ids: Tensor,
    input_ids: Tensor,
    labels: Tensor,
    attention_mask: Tensor,
    total: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of the full-size masked LM that reads the generator's corrupted input `fake_ids` (paper §3.5), with
    its accuracy on the tokens it predicts and the share of real tokens replaced. Replace MLM (`copy_logits` None,
    `logits` (B, N, V) at the masked slots): `generator_loss` at the slots. All-Tokens MLM (`logits` (B, L, V)):
    `copy_mlm_loss` over every real token. `total`: the global batch's denominator (`loss_totals`)."""
    if copy_logits is None:
        loss = generator_loss(logits, masked.targets, masked.weights, 0.0, total)
    else:
        loss = copy_mlm_loss(logits, copy_logits, fake_ids, input_ids, attention_mask, total)
    with torch.no_grad():
        if copy_logits is None:
            accuracy = weighted_accuracy(logits.argmax(-1), masked.targets, masked.weights)
        else:
            predicted = copy_mixture_predictions(logits, copy_logits, fake_ids)
            accuracy = weighted_accuracy(predicted, input_ids, attention_mask.float())
        replaced = labels.sum().float() / attention_mask.sum().clamp(min=1).float()
    return loss, {"accuracy": accuracy, "replaced_fraction": replaced}


@dataclass
class PretrainOutput:
    """Named results of one pretraining forward; every field but `loss` is detached. For replace-mlm and
    all-tokens-mlm, `disc_loss` and `disc_accuracy` are the full-size masked LM's loss and accuracy."""

    loss: Tensor
    gen_loss: Tensor
    disc_loss: Tensor
    gen_accuracy: Tensor  # argmax of the generator at the masked slots == original
    sampled_accuracy: Tensor  # sampled replacement == original
    disc_accuracy: Tensor  # over the tokens the discriminator scores (all real ones but for electra-15)
    replaced_fraction: Tensor  # share of those tokens whose label is "replaced"
    disc_logits: Tensor | None = None  # (B, L) for evaluation (AUC); None without a discriminator
    disc_labels: Tensor | None = None  # (B, L) bool: replaced
    disc_input_ids: Tensor | None = None  # (B, L): the corrupted input the full-size model read
    disc_mask: Tensor | None = None  # (B, L) bool: the tokens the discriminator scores (`scored_positions`)
    disc_prior: Tensor | None = None  # (B, L) electric: the part of disc_logits not from the discriminator


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
