"""A finetuned tagging run as a `transformers` ElectraForTokenClassification directory (docs/tagging.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from electra.errors import ElectraError
from electra.finetune.results import read_record, saved_run
from electra.finetune.tagging.data import TOKEN_TYPE
from electra.finetune.tagging.model import TokenTagger
from electra.hf import load_weights
from electra.io import write_dir, write_json

if TYPE_CHECKING:
    from transformers import ElectraForTokenClassification

    from electra.tokenizer import WordPiece

VERIFY_TOLERANCE = 1e-4


def load_tagging_run(run: str | os.PathLike) -> tuple[TokenTagger, dict[str, Any], WordPiece]:
    """(TokenTagger in eval mode, the run's config, its tokenizer) from a run finetuned with save_model=True."""

    from electra.config import ModelConfig, from_dict
    from electra.tokenizer import load_tokenizer

    run = Path(run)
    tagging = lambda c: c.get("task") == "tagging" and "labels" in c  # noqa: E731
    config = saved_run(run, "tagging", tagging, "its config.json has no task 'tagging' and labels")
    model_cfg = from_dict(ModelConfig, dict(config["model_config"]), str(run / "config.json"))
    model = TokenTagger(model_cfg, len(config["labels"]), config["finetune"].get("head_dropout", 0.0))
    load_weights(model, run / "model.safetensors", "the run's tagger")
    tok = load_tokenizer(run / "tokenizer") if (run / "tokenizer").is_dir() else load_tokenizer(config["tokenizer"])
    if tok.fingerprint() != config.get("tokenizer_fingerprint"):
        raise ElectraError(f"tagging run {run}: tokenizer {tok.source} is not the one the run used")
    return model.eval(), config, tok


def to_hf_tagger(model: TokenTagger, labels: list[str], token_type: int = TOKEN_TYPE) -> ElectraForTokenClassification:
    """transformers' ElectraForTokenClassification computing `model`'s logits for `token_type` at type 0."""
    from transformers import ElectraForTokenClassification

    from electra.hf import copy_state, hf_config

    extra = {
        "id2label": dict(enumerate(labels)),
        "label2id": {t: i for i, t in enumerate(labels)},
        "classifier_dropout": model.dropout.p,
    }
    hf = ElectraForTokenClassification(hf_config(model.config, **extra))
    copy_state(model.electra, hf.electra, "export of the tagging encoder")
    hf.classifier.load_state_dict(model.classifier.state_dict())
    with torch.no_grad():
        types = hf.electra.embeddings.token_type_embeddings.weight
        types[0] = types[token_type]
    return hf.eval()


@torch.no_grad()
def verify_tagging_export(directory: Path, model: TokenTagger, token_type: int = TOKEN_TYPE) -> float:
    """Largest |our logits - transformers' logits| on a padded probe batch (ours with `token_type`, theirs 0)."""
    from transformers import ElectraForTokenClassification

    from electra.hf import quiet_transformers

    with quiet_transformers():
        hf, info = ElectraForTokenClassification.from_pretrained(str(directory), output_loading_info=True)
    bad = {k: [n for n in v if not n.endswith("position_ids")] for k, v in info.items() if k != "error_msgs"}
    if any(bad.values()) or info.get("error_msgs"):
        raise ElectraError(f"export {directory}: transformers reports {bad} {info.get('error_msgs') or ''}".strip())
    g = torch.Generator().manual_seed(0)
    length = min(16, model.config.max_position_embeddings)
    ids = torch.randint(model.config.vocab_size, (2, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, length // 2 :] = 0
    ours = model.eval()(ids, mask, mask * token_type)
    theirs = hf.eval()(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
    diff = (ours - theirs).abs()[mask.bool()].max().item()
    if not diff <= VERIFY_TOLERANCE:
        raise ElectraError(f"export {directory}: transformers computes logits that differ from ours by {diff:.3g}")
    return diff


def export_tagging_run(run: str | Path, out: str | Path, force: bool = False) -> dict:
    """Write `out` (config with the labels, weights, tokenizer, tagging.json) for `pipeline("token-classification")`;
    an existing non-empty `out` is replaced only with `force`. Returns the tagging.json record."""
    from electra.hf import quiet_transformers

    run = Path(run)
    model, config, tok = load_tagging_run(run)
    labels = list(config["labels"])
    token_type = int(config.get("token_type_id", TOKEN_TYPE))
    metrics = read_record(run / "metrics.json")
    record: dict[str, Any] = {"format": "electra-tagging-export", "class": "ElectraForTokenClassification"}
    record |= {"source": str(run.resolve()), "seed": config.get("seed"), "pretrained_model": config.get("model")}
    record |= {"labels": labels, "scheme": config.get("scheme")}
    record["token_type_folded"] = f"row 0 of token_type_embeddings = row {token_type} (the run's token type)"
    record["metrics"] = metrics.get("metrics", {})

    def write(tmp: Path) -> None:
        with quiet_transformers():
            to_hf_tagger(model, labels, token_type).save_pretrained(tmp)
        tok.save(tmp)
        record["verified_max_abs_diff"] = verify_tagging_export(tmp, model, token_type)
        write_json(tmp / "tagging.json", record)

    write_dir(out, write, force, source=run, source_name="the run being exported")
    return record
