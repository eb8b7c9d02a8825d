"""The finetuning model, `SequenceClassifier` (docs/faithfulness.md §6.2), and where its encoder comes from."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from electra.config import ModelConfig, preset
from electra.errors import ElectraError
from electra.model import ElectraModel, init_weights
from electra.tokenizer import WordPiece, load_tokenizer

Head = Literal["official", "transformers"]


class TransformersHead(nn.Module):
    """transformers' `ElectraClassificationHead`, parameter for parameter: dropout, dense (H -> H), GELU, dropout,
    out_proj, on h[CLS]. A model finetuned with it exports as `ElectraForSequenceClassification`."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float, initializer_range: float):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden_size, num_outputs)
        for layer in (self.dense, self.out_proj):  # transformers' `_init_weights` for Linear layers
            nn.init.normal_(layer.weight, std=initializer_range)
            nn.init.zeros_(layer.bias)

    def forward(self, h_cls: Tensor) -> Tensor:
        return self.out_proj(self.dropout(F.gelu(self.dense(self.dropout(h_cls)))))


class SequenceClassifier(nn.Module):
    """The encoder and a head on h[CLS]: `official` = dropout + one dense layer (google-research/electra
    finetune/classification/classification_tasks.py), `transformers` = `TransformersHead`."""

    def __init__(self, cfg: ModelConfig, num_outputs: int, dropout: float = 0.1, head: Head = "official"):
        super().__init__()
        self.config = cfg
        self.head = head
        self.electra = ElectraModel(cfg)
        if head == "official":
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(cfg.hidden_size, num_outputs)
            nn.init.xavier_uniform_(self.classifier.weight)
            nn.init.zeros_(self.classifier.bias)
        elif head == "transformers":
            self.classifier = TransformersHead(cfg.hidden_size, num_outputs, dropout, cfg.initializer_range)
        else:
            raise ElectraError(f"head must be 'official' or 'transformers', got {head!r}")
        self.num_outputs = num_outputs

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        h = self.electra(input_ids, attention_mask, token_type_ids)  # (B, L, H)
        if self.head == "transformers":
            return self.classifier(h[:, 0])
        return self.classifier(self.dropout(h[:, 0]))  # (B, num_outputs): logits, or the regression value


def per_example_loss(outputs: Tensor, labels: Tensor, kind: str) -> Tensor:
    """(B,) losses: -log softmax(logits)[y] (classification), (pred - y)^2 (regression, y already scaled), or the
    binary cross-entropy of each label's sigmoid summed over the labels (multilabel, y multi-hot)."""
    if kind == "regression":
        return (outputs.squeeze(-1).float() - labels.float()) ** 2
    if kind == "multilabel":
        return F.binary_cross_entropy_with_logits(outputs.float(), labels.float(), reduction="none").sum(-1)
    return F.cross_entropy(outputs.float(), labels, reduction="none")


def load_encoder(
    source: str, tokenizer: str | None = None, checkpoint: str = "latest"
) -> tuple[ElectraModel | None, ModelConfig, WordPiece]:
    """(encoder with pretrained weights, its config, its tokenizer) for `source`: a pretraining run directory (at
    `checkpoint`), an HF-format directory, a hub id, or `random:<preset>` (no encoder; `tokenizer` required)."""
    if source.startswith("random:"):
        if tokenizer is None:
            raise ElectraError(f"--model {source} has no tokenizer; give --tokenizer VOCAB_OR_DIR")
        tok = load_tokenizer(tokenizer)
        return None, preset(source.split(":", 1)[1], vocab_size=tok.vocab_size).model, tok
    from electra.hf import load_hf
    from electra.loading import is_run_dir, load_model

    if tokenizer is None:
        encoder, tok = load_model(source, "encoder", checkpoint)
    else:
        tok = load_tokenizer(tokenizer)
        encoder = load_model(source, "encoder", checkpoint)[0] if is_run_dir(source) else load_hf(source, "encoder")
    cfg = encoder.config
    if tok.vocab_size > cfg.vocab_size:
        raise ElectraError(
            f"tokenizer {tok.source} has {tok.vocab_size} tokens but model {source} only {cfg.vocab_size}"
        )
    return encoder, cfg, tok


def build_model(
    encoder: ElectraModel | None,
    cfg: ModelConfig,
    num_outputs: int,
    dropout: float = 0.1,
    init_seed: int = 0,
    head: Head = "official",
) -> SequenceClassifier:
    """A fresh classifier: pretrained encoder weights when given (else trunc-normal init), a new head."""
    torch.manual_seed(init_seed)
    model = SequenceClassifier(cfg, num_outputs, dropout, head)
    start_encoder(model.electra, encoder)
    return model


def start_encoder(module: ElectraModel, encoder: ElectraModel | None) -> None:
    """A finetuning model's encoder: the pretrained weights when given, else the official truncated-normal init."""
    if encoder is None:
        init_weights(module, module.config.initializer_range)
    else:
        module.load_state_dict(encoder.state_dict())
