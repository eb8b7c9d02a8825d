"""The tagging model (a Linear on every position), its loss at each word's first piece, and its metrics: word
accuracy and, for BIO/BIOES tags, seqeval span precision/recall/F1 (docs/tagging.md)."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from electra.config import ModelConfig
from electra.finetune.encoder import start_encoder
from electra.finetune.tagging.data import IGNORE
from electra.model import ElectraModel


class TokenTagger(nn.Module):
    """`electra` encoder + dropout + `classifier` Linear(H, num_labels) on every position: (B, L, num_labels)."""

    def __init__(self, cfg: ModelConfig, num_labels: int, dropout: float = 0.0):
        super().__init__()
        self.config = cfg
        self.electra = ElectraModel(cfg)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cfg.hidden_size, num_labels)
        nn.init.xavier_uniform_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        h = self.electra(input_ids, attention_mask, token_type_ids)  # (B, L, H)
        return self.classifier(self.dropout(h))


def build_tagger(
    encoder: ElectraModel | None, cfg: ModelConfig, num_labels: int, dropout: float = 0.0, init_seed: int = 0
) -> TokenTagger:
    """A fresh tagger: the pretrained encoder's weights when given (else trunc-normal init), a new Glorot head."""
    torch.manual_seed(init_seed)
    model = TokenTagger(cfg, num_labels, dropout)
    start_encoder(model.electra, encoder)
    return model


def tagging_loss(logits: Tensor, labels: Tensor, reduction: str = "sum") -> tuple[Tensor, int]:
    """(loss over the batch, number of scored words): cross-entropy at the positions whose label is not IGNORE."""
    total = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
    n = int((labels != IGNORE).sum())
    return (total if reduction == "sum" else total / max(n, 1)), n


def word_accuracy(gold: list[list[str]], pred: list[list[str]]) -> float:
    """100 x the fraction of words whose predicted tag is the gold tag (tagging_metrics.py `AccuracyScorer`)."""
    pairs = [(g, p) for gs, ps in zip(gold, pred, strict=True) for g, p in zip(gs, ps, strict=True)]
    return 100.0 * sum(g == p for g, p in pairs) / max(len(pairs), 1)


def span_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Span precision, recall and F1 (x100) with seqeval's default (conlleval) mode, which reads BIO (IOB1 and
    IOB2) and BIOES tags; a span with a wrong boundary or type is both a false positive and a false negative."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on tags it does not know how to read; scores stay defined
        return {
            "precision": 100.0 * precision_score(gold, pred, zero_division=0),
            "recall": 100.0 * recall_score(gold, pred, zero_division=0),
            "f1": 100.0 * f1_score(gold, pred, zero_division=0),
        }


def tagging_metrics(gold: list[list[str]], pred: list[list[str]], scheme: str | None) -> dict[str, float]:
    """accuracy, plus precision/recall/f1 when `scheme` is BIO or BIOES. `pred` may be shorter than `gold` for a
    truncated sentence: only the predicted words are scored, as in the official code."""
    gold = [g[: len(p)] for g, p in zip(gold, pred, strict=True)]
    kept = [(g, p) for g, p in zip(gold, pred, strict=True) if p]
    gold, pred = [g for g, _ in kept], [p for _, p in kept]
    metrics = {"accuracy": word_accuracy(gold, pred)}
    if scheme is not None:
        metrics.update(span_scores(gold, pred))
    return metrics
