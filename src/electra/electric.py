"""Electric's objective math (Clark et al., EMNLP 2020), as small pure functions.

The official code (google-research/electra, run_pretraining.py) turns the discriminator's score into a noise-contrastive
logit: it adds the stop-gradient log-probability of each input token under the two-tower cloze generator and the log
of the noise rate ``mask_prob / (1 - mask_prob)``; the label of a position is whether it was sampled, not whether the
sample differs from the original.

`ClozeGenerator` is that generator (official `TwoTowerClozeTransformer`): a left-to-right and a right-to-left
generator-sized encoder over the *original* tokens, sharing the discriminator's embeddings, whose states
`two_tower_states` joins and a masked-LM head projects onto the vocabulary; it never sees [MASK]. `Electric` is
`ELECTRA` with that generator and Electric's loss (official `electric_objective`): docs/faithfulness.md §3.5.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from electra import objective as obj
from electra.config import ModelConfig
from electra.model import ELECTRA, ElectraModel, Embeddings, GeneratorPredictions, attention_bias


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


def causal_mask(attention_mask: Tensor | None, length: int, reverse: bool, device: torch.device) -> Tensor:
    """(B or 1, 1, L, L) boolean SDPA mask of one tower: query i attends to the real keys j <= i (left to right)
    or j >= i (``reverse``), as the official ``matrix_band_part`` masks; and always to itself, so that a padded
    query with no real key in reach still has one (its output is never read by a real position)."""
    i = torch.arange(length, device=device)
    allowed = (i[None, :] >= i[:, None]) if reverse else (i[None, :] <= i[:, None])  # [query, key]
    keys = attention_bias(attention_mask)  # (B, 1, 1, L) or None
    allowed = allowed[None, None] if keys is None else allowed & keys
    return allowed | torch.eye(length, dtype=torch.bool, device=device)


class ClozeGenerator(nn.Module):
    """Electric's two-tower cloze generator: logits of p(x_t | x_\\t) at every position from the original tokens."""

    def __init__(self, cfg: ModelConfig, embeddings: Embeddings | None = None):
        super().__init__()
        self.config = cfg
        self.ltr = ElectraModel(cfg, embeddings)  # each tower its own projection and layers, one embedding module
        self.rtl = ElectraModel(cfg, self.ltr.embeddings)
        self.generator_predictions = GeneratorPredictions(replace(cfg, hidden_size=2 * cfg.hidden_size))
        self.generator_lm_head = nn.Linear(cfg.embedding_size, cfg.vocab_size)
        self.generator_lm_head.weight = self.ltr.embeddings.word_embeddings.weight

    @property
    def electra(self) -> ElectraModel:
        """The left-to-right tower, whose embeddings (those both towers read) `ELECTRA` shares."""
        return self.ltr

    def tower(self, which: str, input_ids: Tensor, attention_mask: Tensor | None, token_type_ids: Tensor) -> Tensor:
        model = self.ltr if which == "ltr" else self.rtl
        x = model.embeddings_project(model.embeddings(input_ids, token_type_ids))
        return model.encoder(x, causal_mask(attention_mask, input_ids.shape[1], which == "rtl", input_ids.device))

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Cloze logits (B, L, V), fp32 also under autocast. Position t's never read x_t, except at the first and the
        last position, where the official cyclic roll wraps around ([CLS], and [SEP] or padding: never sampled)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        states = [self.tower(w, input_ids, attention_mask, token_type_ids) for w in ("ltr", "rtl")]
        h = self.generator_predictions(two_tower_states(*states))
        head = self.generator_lm_head
        with torch.autocast(h.device.type, enabled=False):
            return F.linear(h.float(), head.weight.float(), head.bias.float())


class Electric(ELECTRA):
    """`ELECTRA` with objective "electric": the generator is a `ClozeGenerator`, the discriminator's output the
    score that `nce_logits` turns into Electric's NCE logit, and the loss the official `electric_objective`'s."""

    generator_class = ClozeGenerator

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor,
        rng: torch.Generator | None = None,
        masked: obj.Masked | None = None,
        totals: obj.LossTotals | None = None,
    ) -> obj.PretrainOutput:
        """As `ELECTRA.forward`: `masked` chooses the positions to sample (its [MASK] corruption is not read);
        `totals` are the global batch's denominators (`objective.loss_totals`: the maskable and the real tokens).

        loss = gen_weight * cloze loss over every maskable token + disc_weight * NCE loss over every real token;
        the label of a position is "was sampled", also where the sample equals the original."""
        cfg = self.cfg
        if masked is None:
            masked = self.mask(input_ids, attention_mask, rng)
        gen_total, disc_total = (None, None) if totals is None else totals
        (B, N), (L, V) = masked.positions.shape, (input_ids.shape[1], cfg.model.vocab_size)
        noise = None
        if cfg.sampling == "gumbel":  # drawn first, as ELECTRA's (see there)
            noise = torch.rand((B, N, V), generator=rng, device=input_ids.device)
        cloze = self.generator(input_ids, attention_mask, token_type_ids)  # (B, L, V), from the original tokens
        candidates = obj.maskable(input_ids, attention_mask, self.special).float()
        gen_loss = obj.generator_loss(cloze, input_ids, candidates, cfg.gen_label_smoothing, gen_total)
        slots = cloze.gather(1, masked.positions[:, :, None].expand(-1, -1, V))  # (B, N, V)
        with torch.no_grad():
            disallow = masked.targets if cfg.disallow_correct else None
            sampled = obj.sample_replacements(slots.detach(), cfg.temperature, cfg.sampling, rng, disallow, noise)
            fake_ids, _ = obj.replace_tokens(input_ids, attention_mask, masked.positions, masked.weights, sampled)
            labels = obj.selected_positions(masked.positions, masked.weights, L) & attention_mask.bool()
        scores = self.discriminator(fake_ids, attention_mask, token_type_ids)  # (B, L): the energies E(x)_t
        logits = nce_logits(scores, cloze, fake_ids, cfg.mask_prob)
        real = attention_mask.bool()
        disc_loss = obj.discriminator_loss(logits, labels, real, cfg.disc_label_smoothing, disc_total)
        loss = cfg.gen_weight * gen_loss + cfg.disc_weight * disc_loss  # (the official total_loss)
        with torch.no_grad():
            d = obj.discriminator_metrics(logits, labels, real)
            return obj.PretrainOutput(
                loss=loss,
                gen_loss=gen_loss.detach(),
                disc_loss=disc_loss.detach(),
                gen_accuracy=obj.weighted_accuracy(slots.argmax(-1), masked.targets, masked.weights),
                sampled_accuracy=obj.weighted_accuracy(sampled, masked.targets, masked.weights),
                disc_accuracy=d["accuracy"],
                replaced_fraction=d["replaced_fraction"],
                disc_logits=logits.detach(),
                disc_labels=labels,
                disc_input_ids=fake_ids,
                disc_mask=real,
                disc_prior=logits - scores.float(),  # log q(x~_t) + log(p / (1 - p)): the cloze model's own ranking
            )
