"""The finetuning model (spec §6.2) and where its encoder comes from.

`SequenceClassifier` = the pretrained discriminator's encoder + dropout(0.1) + one dense layer on h[CLS]
(Glorot-uniform kernel, zero bias, no pooler). Classification: cross-entropy; STS-B: regression on y/5 with squared
error. `load_encoder` reads the encoder from an HF-format directory, a hub id, a pretraining run directory, or
builds a randomly initialised one (`random:<preset>`) for the no-pretraining baseline.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from electra.config import ModelConfig, from_dict, preset
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

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> Tensor:  # fmt: skip
        h = self.electra(input_ids, attention_mask, token_type_ids)  # (B, L, H)
        return self.classifier(self.dropout(h[:, 0]))  # (B, num_outputs): logits, or the regression value


def per_example_loss(outputs: Tensor, labels: Tensor, regression: bool) -> Tensor:
    """(B,) losses: -log softmax(logits)[y], or (pred - y)^2 with y already divided by 5."""
    if regression:
        return (outputs.squeeze(-1).float() - labels.float()) ** 2
    return F.cross_entropy(outputs.float(), labels, reduction="none")


# ---------------------------------------------------------------------------------------------- sources


def _is_hf_dir(path: Path) -> bool:
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("model_type") == "electra"
    except (OSError, json.JSONDecodeError):
        return False


def _find_hf_export(run: Path) -> Path | None:
    """The newest HF-format discriminator directory inside a pretraining run directory."""
    found = [p.parent for p in run.glob("**/config.json") if _is_hf_dir(p.parent) and "generator" not in p.parent.name]
    return max(found, key=lambda p: (p / "config.json").stat().st_mtime) if found else None


def _load_pretraining_run(path: Path, checkpoint: str) -> tuple[ElectraModel, WordPiece] | None:
    """The discriminator encoder (the generator's for an MLM-only run) of an `electra pretrain` run directory."""
    try:
        from electra.checkpoint import is_run_dir, load_run
    except ImportError:  # pretraining not available in this build
        return None
    if not is_run_dir(path):
        return None
    model, _, tok = load_run(path, checkpoint)
    owner = getattr(model, "discriminator", None) or model.generator
    return owner.electra, tok


def load_encoder(
    source: str, tokenizer: str | None = None, checkpoint: str = "latest"
) -> tuple[ElectraModel | None, ModelConfig, WordPiece]:
    """(encoder with pretrained weights, its config, its tokenizer) for `source`.

    source: a pretraining run directory (`checkpoint`: latest, a kept fraction such as 25%, step_N), an HF-format
    directory (ElectraForPreTraining or ElectraModel weights), a hub id (`google/electra-small-discriminator`), or
    `random:<preset>` (no pretraining; returns None for the encoder; `tokenizer` is then required).
    `tokenizer` overrides where the tokenizer comes from.
    """
    if source.startswith("random:"):
        if tokenizer is None:
            raise ElectraError(f"--model {source} has no tokenizer; give --tokenizer VOCAB_OR_DIR")
        tok = load_tokenizer(tokenizer)
        cfg = preset(source.split(":", 1)[1], vocab_size=tok.vocab_size).model
        return None, cfg, tok
    path = Path(source)
    if path.is_dir() and not _is_hf_dir(path):
        run = _load_pretraining_run(path, checkpoint)
        if run is not None:
            encoder, tok = run
            if tokenizer is not None:
                tok = load_tokenizer(tokenizer)
            return encoder, encoder.config, tok
        export = _find_hf_export(path)
        if export is None:
            raise ElectraError(f"{source} is neither a pretraining run directory nor an HF-format ELECTRA directory "
                               "(config.json + model.safetensors)")  # fmt: skip
        path = export
        source = str(export)
    tok = load_tokenizer(tokenizer or source)  # before the weights: a missing tokenizer fails fast
    from electra.hf import load_hf

    try:
        model = load_hf(source, "discriminator").electra
    except ElectraError as err:
        if "is not a discriminator checkpoint" not in str(err):
            raise
        model = load_hf(source, "encoder")
    cfg = model.config
    if tok.vocab_size > cfg.vocab_size:
        raise ElectraError(f"tokenizer of {source} has {tok.vocab_size} tokens but the model only {cfg.vocab_size}")
    return model, cfg, tok


def build_model(encoder: ElectraModel | None, cfg: ModelConfig, num_outputs: int, dropout: float = 0.1,
                init_seed: int = 0) -> SequenceClassifier:  # fmt: skip
    """A fresh classifier: pretrained encoder weights when given (else trunc-normal init), a new Glorot head."""
    torch.manual_seed(init_seed)
    model = SequenceClassifier(cfg, num_outputs, dropout)
    if encoder is None:
        init_weights(model.electra, cfg.initializer_range)
    else:
        model.electra.load_state_dict(encoder.state_dict())
    return model


def model_config_from_json(values: dict) -> ModelConfig:
    return from_dict(ModelConfig, values)
