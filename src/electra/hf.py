"""Conversion to and from Hugging Face `transformers` ELECTRA classes (an HF-format directory or a hub id). Our
parameter names are transformers' names: the key map is the identity, and key sets and shapes must agree exactly."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from torch import nn

from electra.config import ModelConfig
from electra.errors import ElectraError
from electra.model import Discriminator, ElectraModel, Generator

if TYPE_CHECKING:
    from transformers import ElectraConfig, PretrainedConfig

    from electra.tokenizer import WordPiece

Kind = Literal["discriminator", "generator", "encoder"]
HeadKind = Literal["sequence_classification", "token_classification", "question_answering"]

_HF_FIELDS = tuple(  # the ModelConfig fields, by their (shared) names in transformers' ElectraConfig
    "vocab_size embedding_size hidden_size num_hidden_layers num_attention_heads intermediate_size "
    "max_position_embeddings type_vocab_size hidden_dropout_prob attention_probs_dropout_prob layer_norm_eps "
    "initializer_range pad_token_id".split()
)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and warnings (our CLI prints its own, one-line errors)."""
    from transformers.utils import logging

    bars, level = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def hf_config(cfg: ModelConfig, **extra) -> ElectraConfig:
    """The `transformers.ElectraConfig` describing `cfg` (exact GELU, as the official code)."""
    from transformers import ElectraConfig

    return ElectraConfig(**{f: getattr(cfg, f) for f in _HF_FIELDS}, hidden_act="gelu", **extra)


def model_config_from_hf(hf_cfg: PretrainedConfig) -> ModelConfig:
    if getattr(hf_cfg, "model_type", None) != "electra":
        raise ElectraError(f"expected an ELECTRA model, got model_type {getattr(hf_cfg, 'model_type', None)!r}")
    if getattr(hf_cfg, "hidden_act", "gelu") != "gelu":
        raise ElectraError(f"unsupported hidden_act {hf_cfg.hidden_act!r}; only exact 'gelu' is implemented")
    return ModelConfig(**{f: getattr(hf_cfg, f) for f in _HF_FIELDS if getattr(hf_cfg, f, None) is not None})


def hf_class(kind: Kind | HeadKind) -> type:
    """transformers' class for a discriminator, generator, bare encoder or finetuned model."""
    import transformers

    return {
        "discriminator": transformers.ElectraForPreTraining,
        "generator": transformers.ElectraForMaskedLM,
        "encoder": transformers.ElectraModel,
        # finetuned models whose head has the same parameters as transformers' (export them with copy_state)
        "sequence_classification": transformers.ElectraForSequenceClassification,
        "token_classification": transformers.ElectraForTokenClassification,
        "question_answering": transformers.ElectraForQuestionAnswering,
    }[kind]


def _ours(kind: Kind, cfg: ModelConfig) -> nn.Module:
    return {"discriminator": Discriminator, "generator": Generator, "encoder": ElectraModel}[kind](cfg)


def copy_state(src: nn.Module, dst: nn.Module, what: str = "model") -> None:
    """Copy parameters by name, requiring identical key sets and shapes (buffers such as position_ids ignored)."""
    s = {k: v for k, v in src.state_dict().items() if not k.endswith(("position_ids", "token_type_ids"))}
    d = {k: v for k, v in dst.state_dict().items() if not k.endswith(("position_ids", "token_type_ids"))}
    missing, unexpected = sorted(set(d) - set(s)), sorted(set(s) - set(d))
    if missing or unexpected:
        raise ElectraError(
            f"{what}: weights do not match the architecture (missing {missing[:4]}{'...' if len(missing) > 4 else ''},"
            f" unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''})"
        )
    for k, v in s.items():
        if v.shape != d[k].shape:
            raise ElectraError(f"{what}: {k} has shape {tuple(v.shape)}, expected {tuple(d[k].shape)}")
    dst.load_state_dict(s, strict=False)


def to_hf(module: Discriminator | Generator | ElectraModel, **config_extra) -> nn.Module:
    """The equivalent transformers model (ElectraForPreTraining / ElectraForMaskedLM / ElectraModel)."""
    kinds: dict[type, Kind] = {Discriminator: "discriminator", Generator: "generator"}
    kind = next((k for cls, k in kinds.items() if isinstance(module, cls)), "encoder")
    cfg = module.config
    hf = hf_class(kind)(hf_config(cfg, **config_extra))
    copy_state(module, hf, f"export of the {kind}")
    if kind == "generator":
        hf.tie_weights()
    return hf.eval()


def from_hf(hf_model: nn.Module, kind: Kind) -> nn.Module:
    ours = _ours(kind, model_config_from_hf(hf_model.config))
    copy_state(hf_model, ours, f"{kind} {getattr(hf_model, 'name_or_path', '')}")
    return ours.eval()


def save_hf(
    module: Discriminator | Generator | ElectraModel, out_dir: str | os.PathLike, tokenizer: WordPiece | None = None
) -> Path:
    """`save_pretrained` of the equivalent transformers model (safetensors) plus the tokenizer files."""
    out_dir = Path(out_dir)
    with quiet_transformers():
        to_hf(module).save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save(out_dir)
    return out_dir


def load_hf(source: str | os.PathLike, kind: Kind = "discriminator") -> nn.Module:
    """Our model from an HF-format directory or hub id, with a clear error for anything that is not one."""
    import transformers

    path = Path(source)
    if path.exists() and not path.is_dir():
        raise ElectraError(f"model {source} is a file; expected a model directory or a hub id")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ElectraError(f"model directory {source} has no config.json")
        try:
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as err:
            raise ElectraError(f"{path / 'config.json'} is not a readable JSON model config ({err})") from None
        if model_type != "electra":
            raise ElectraError(f"model directory {source} holds a {model_type!r} model, not an ELECTRA model")
        if not any(
            (path / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
        ):
            raise ElectraError(f"model directory {source} has no weights (model.safetensors or pytorch_model.bin)")
    elif str(source).startswith((".", "/")) or str(source).count("/") != 1:
        raise ElectraError(
            f"model {source} not found: expected a model directory or a hub id such as "
            "google/electra-small-discriminator"
        )
    else:
        from electra import hub

        hub.require(str(source), "model")
    try:
        with quiet_transformers():
            hf_cfg = transformers.AutoConfig.from_pretrained(str(source))
            model_config_from_hf(hf_cfg)
            hf, info = hf_class(kind).from_pretrained(str(source), output_loading_info=True)
    except ElectraError as err:
        raise ElectraError(f"model {source}: {err}") from None
    except Exception as err:  # unreachable hub, corrupt file, ...
        raise ElectraError(f"could not load model {source}: {err}") from None
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("position_ids")]
    if missing:
        raise ElectraError(
            f"model {source} is not a {kind} checkpoint: missing {', '.join(sorted(missing)[:3])}"
            f"{'...' if len(missing) > 3 else ''}"
        )
    return from_hf(hf, kind)


def load_weights(model: nn.Module, weights: Path, what: str) -> nn.Module:
    """`model` with the tensors of the safetensors file `weights` (a finetuned run's), every key matched: a file
    that cannot be read or does not fit is one line naming it and `what` it should have been."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except Exception as err:
        raise ElectraError(f"cannot read {weights}: {err}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ElectraError(f"{weights} does not match {what} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model
