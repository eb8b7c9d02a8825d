"""Electric's objective math (Clark et al., EMNLP 2020), as small pure functions.

The official code (google-research/electra, run_pretraining.py) turns the discriminator's score into a noise-contrastive
logit: it adds the stop-gradient log-probability of each input token under the two-tower cloze generator and the log
of the noise rate ``mask_prob / (1 - mask_prob)``; the label of a position is whether it was sampled, not whether the
sample differs from the original.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def nce_logits(scores: Tensor, cloze_logits: Tensor, input_ids: Tensor, mask_prob: float) -> Tensor:
    """The NCE logit of each position: ``scores + stop_grad(log q(x_t | x_\\t)) + log(p / (1 - p))``.

    ``scores`` is the discriminator head's output ``[batch, seq]``; ``cloze_logits`` the cloze generator's
    ``[batch, seq, vocab]``; ``input_ids`` the (corrupted) tokens the discriminator read.
    """
    log_q = torch.log_softmax(cloze_logits.float(), dim=-1).gather(-1, input_ids.unsqueeze(-1)).squeeze(-1)
    return scores + log_q.detach() + math.log(mask_prob / (1.0 - mask_prob))


def nce_loss(logits: Tensor, sampled: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean binary cross-entropy over real tokens; the label is whether the position was sampled."""
    weights = attention_mask.float()
    losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, sampled.float(), reduction="none")
    return (losses * weights).sum() / (1e-6 + weights.sum())


def two_tower_states(ltr: Tensor, rtl: Tensor) -> Tensor:
    """The cloze generator's state at each position from its two towers, ``[batch, seq, 2 * hidden]``.

    Position t takes the left-to-right tower's state at t - 1 and the right-to-left tower's at t + 1 (cyclically, as
    the official ``roll``), so neither half has read the token at t.
    """
    return torch.cat([torch.roll(ltr, 1, dims=1), torch.roll(rtl, -1, dims=1)], dim=-1)
