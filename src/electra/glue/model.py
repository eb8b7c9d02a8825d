"""The finetuning model (docs/faithfulness.md §6.2) and where its encoder comes from.

`SequenceClassifier` = the pretrained discriminator's encoder + dropout(0.1) + one dense layer on h[CLS]
(Glorot-uniform kernel, zero bias, no pooler). Classification: cross-entropy; STS-B: regression on y/5 with squared
error. `load_encoder` reads the encoder from an HF-format directory, a hub id, a pretraining run directory, or
builds a randomly initialised one (`random:<preset>`) for the no-pretraining baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from electra.config import ModelConfig, preset
from electra.errors import ElectraError
from electra.model import ElectraModel, init_weights
from electra.tokenizer import WordPiece, load_tokenizer


class SequenceClassifier(nn.Module):
    def __init__(self, cfg: ModelConfig, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.config = cfg
        self.electra = ElectraModel(cfg)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cfg.hidden_size, num_outputs)
        nn.init.xavier_uniform_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> Tensor:
        h = self.electra(input_ids, attention_mask, token_type_ids)  # (B, L, H)
        return self.classifier(self.dropout(h[:, 0]))  # (B, num_outputs): logits, or the regression value


def per_example_loss(outputs: Tensor, labels: Tensor, regression: bool) -> Tensor:
    """(B,) losses: -log softmax(logits)[y], or (pred - y)^2 with y already divided by 5."""
    if regression:
        return (outputs.squeeze(-1).float() - labels.float()) ** 2
    return F.cross_entropy(outputs.float(), labels, reduction="none")


# ---------------------------------------------------------------------------------------------- sources


def load_encoder(
    source: str, tokenizer: str | None = None, checkpoint: str = "latest"
) -> tuple[ElectraModel | None, ModelConfig, WordPiece]:
    """(encoder with pretrained weights, its config, its tokenizer) for `source`.

    source: a pretraining run directory (`checkpoint`: latest, a kept fraction such as 25%, step_N), an HF-format
    directory (ElectraForPreTraining or ElectraModel weights), a hub id (`google/electra-small-discriminator`), or
    `random:<preset>` (no pretraining: the encoder is None and `tokenizer` is required).
    `tokenizer` (a vocab file or directory) overrides the model's own.
    """
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
    encoder: ElectraModel | None, cfg: ModelConfig, num_outputs: int, dropout: float = 0.1, init_seed: int = 0
) -> SequenceClassifier:
    """A fresh classifier: pretrained encoder weights when given (else trunc-normal init), a new Glorot head."""
    torch.manual_seed(init_seed)
    model = SequenceClassifier(cfg, num_outputs, dropout)
    if encoder is None:
        init_weights(model.electra, cfg.initializer_range)
    else:
        model.electra.load_state_dict(encoder.state_dict())
    return model
