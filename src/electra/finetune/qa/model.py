"""The span-extraction model: the ELECTRA encoder with the `official` head or `transformers`' (docs/qa.md); every
head parameter's name starts with `qa_` (`head_prefixes`), which layer-wise decay uses to tell it apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from electra.config import ModelConfig
from electra.errors import ElectraError
from electra.finetune.encoder import start_encoder
from electra.model import ElectraModel

Head = Literal["official", "transformers"]
HEAD_PREFIXES = ("qa_",)
HIDDEN = 512  # the width of the official joint-prediction and answerable layers
MASK_PENALTY = 1000.0  # official: logits += 1000 * (answer_mask - 1)


@dataclass
class HeadOptions:
    """The official head's switches (google-research/electra configure_finetuning.py defaults)."""

    joint_prediction: bool = True
    beam_size: int = 20
    answerable_classifier: bool = True
    answerable_uses_start_logits: bool = True
    answerable_weight: float = 0.5


class QuestionAnswerer(nn.Module):
    def __init__(self, cfg: ModelConfig, head: Head = "official", options: HeadOptions | None = None):
        super().__init__()
        self.config = cfg
        self.head = head
        self.options = options or HeadOptions()
        self.electra = ElectraModel(cfg)
        H = cfg.hidden_size
        if head == "transformers":
            self.qa_outputs = nn.Linear(H, 2)
            nn.init.normal_(self.qa_outputs.weight, std=cfg.initializer_range)
            nn.init.zeros_(self.qa_outputs.bias)
            return
        if head != "official":
            raise ElectraError(f"QA head must be 'official' or 'transformers', got {head!r}")
        o = self.options
        self.qa_start = nn.Linear(H, 1)
        if o.joint_prediction:
            self.qa_end_hidden = nn.Linear(2 * H, HIDDEN)  # input [h_start; h_end], the official concat order
            self.qa_end = nn.Linear(HIDDEN, 1)
        else:
            self.qa_end = nn.Linear(H, 1)
        if o.answerable_classifier:
            if o.answerable_uses_start_logits:
                self.qa_answerable_hidden = nn.Linear(2 * H, HIDDEN)
                self.qa_answerable = nn.Linear(HIDDEN, 1)
            else:
                self.qa_answerable = nn.Linear(H, 1)
        for name, m in self.named_modules():
            if name.startswith("qa_") and isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def head_prefixes(self) -> tuple[str, ...]:
        return HEAD_PREFIXES

    # ------------------------------------------------------------------------------------------ official pieces

    def _end_logits(self, h: Tensor, h_start: Tensor, penalty: Tensor) -> Tensor:
        """End logits (B, L) given the start's hidden state (B, H): dense([h_start; h_j]) split into its two halves
        so the (B, L, 2H) concat is never built."""
        H = h.shape[-1]
        w = self.qa_end_hidden.weight
        hidden = F.gelu(h @ w[:, H:].T + (h_start @ w[:, :H].T + self.qa_end_hidden.bias)[:, None, :])
        return self.qa_end(hidden).squeeze(-1) + penalty

    def _answerable(self, h: Tensor, start_logits: Tensor) -> Tensor:
        if self.options.answerable_uses_start_logits:
            start_p = torch.softmax(start_logits, -1)
            pooled = torch.einsum("bl,blh->bh", start_p, h)
            x = F.gelu(self.qa_answerable_hidden(torch.cat([h[:, 0], pooled], -1)))
        else:
            x = h[:, 0]
        return self.qa_answerable(x).squeeze(-1)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        start_positions: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """start_logits, end_logits (B, L), answerable_logit (B,); at inference with joint prediction also the
        beam's start_top_* (B, K) and end_top_* (B, K, K), K = min(beam_size, L)."""
        h = self.electra(input_ids, attention_mask, token_type_ids).float()  # (B, L, H)
        B, L, _ = h.shape
        if self.head == "transformers":
            start, end = self.qa_outputs(h).unbind(-1)
            return {"start_logits": start, "end_logits": end}
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        answer_mask = (attention_mask * token_type_ids).float()
        answer_mask[:, 0] += 1.0  # [CLS]: the "no answer" position
        penalty = MASK_PENALTY * (answer_mask - 1.0)
        start_logits = self.qa_start(h).squeeze(-1) + penalty
        out: dict[str, Tensor] = {"start_logits": start_logits}
        o = self.options
        if not o.joint_prediction:
            out["end_logits"] = self.qa_end(h).squeeze(-1) + penalty
        elif start_positions is not None:
            h_start = h[torch.arange(B, device=h.device), start_positions]
            out["end_logits"] = self._end_logits(h, h_start, penalty)
        else:
            K = min(o.beam_size, L)
            top_lp, top_i = torch.log_softmax(start_logits, -1).topk(K, -1)  # (B, K)
            end_lp, end_i = [], []
            for k in range(K):  # one beam at a time: (B, L, 512) at most
                h_start = h[torch.arange(B, device=h.device), top_i[:, k]]
                lp, i = torch.log_softmax(self._end_logits(h, h_start, penalty), -1).topk(K, -1)
                end_lp.append(lp)
                end_i.append(i)
            out.update(
                start_top_log_probs=top_lp,
                start_top_index=top_i,
                end_top_log_probs=torch.stack(end_lp, 1),
                end_top_index=torch.stack(end_i, 1),
            )
        if o.answerable_classifier:
            out["answerable_logit"] = self._answerable(h, start_logits)
        return out

    def loss(
        self, out: dict[str, Tensor], start_positions: Tensor, end_positions: Tensor, is_impossible: Tensor
    ) -> Tensor:
        """(B,) per-example losses (the official head's, or transformers' before its batch mean)."""
        start = F.cross_entropy(out["start_logits"].float(), start_positions, reduction="none")
        end = F.cross_entropy(out["end_logits"].float(), end_positions, reduction="none")
        losses = (start + end) / 2.0
        if self.head == "official" and self.options.answerable_classifier:
            bce = F.binary_cross_entropy_with_logits(out["answerable_logit"], is_impossible.float(), reduction="none")
            losses = losses + self.options.answerable_weight * bce
        return losses


def build_qa_model(
    encoder: ElectraModel | None,
    cfg: ModelConfig,
    head: Head = "official",
    options: HeadOptions | None = None,
    init_seed: int = 0,
) -> QuestionAnswerer:
    """A fresh model: the pretrained encoder's weights when given, a new head initialised from `init_seed`."""
    torch.manual_seed(init_seed)
    model = QuestionAnswerer(cfg, head, options)
    start_encoder(model.electra, encoder)
    return model
