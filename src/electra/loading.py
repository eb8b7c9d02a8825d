"""One way to name a model everywhere: a pretraining run directory, an HF-format directory, or a hub id."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from electra import init
from electra.checkpoint import is_run_dir, load_run
from electra.config import PretrainConfig
from electra.errors import ElectraError
from electra.hf import Kind, load_hf
from electra.model import ELECTRA
from electra.objective import RTD, SpecialIds
from electra.tokenizer import WordPiece, load_tokenizer


def load_model(
    source: str | os.PathLike, kind: Kind = "discriminator", checkpoint: str = "latest"
) -> tuple[nn.Module, WordPiece]:
    """The discriminator, generator or bare encoder named by `source`, in eval mode, with its tokenizer; with
    `remove_top_word_direction` in the run's config, the discriminator as `electra export` writes it (`load_run`
    gives the checkpoint as trained)."""
    if is_run_dir(source):
        model, cfg, tokenizer = load_run(source, checkpoint)
        if kind != "generator" and cfg.remove_top_word_direction:
            init.remove_top_word_direction(model)
        if kind == "discriminator" and not hasattr(model, "discriminator"):
            raise ElectraError(f"run {source} was trained with objective {cfg.objective!r}: it has no discriminator")
        if kind == "discriminator":
            module = model.discriminator
        elif kind == "generator" and cfg.objective == "electric":
            raise ElectraError(
                f"run {source} was trained with objective 'electric': its generator is a two-tower cloze "
                "model, not a masked LM"
            )
        elif kind == "generator":
            module = model.generator
        else:  # the full-size encoder: the discriminator's, or the masked LM's
            module = model.delivered()
        return module.eval(), tokenizer
    module = load_hf(source, kind)
    try:
        tokenizer = load_tokenizer(source)
    except ElectraError as err:
        raise ElectraError(f"model {source} has no usable tokenizer: {err}") from None
    if tokenizer.vocab_size != module.config.vocab_size:
        raise ElectraError(
            f"model {source}: tokenizer has {tokenizer.vocab_size} tokens but the model expects "
            f"{module.config.vocab_size}"
        )
    return module, tokenizer


def init_from_hf(cfg: PretrainConfig, sources: list[str]) -> tuple[PretrainConfig, ELECTRA, WordPiece]:
    """Continued pretraining: discriminator (and optionally generator) weights and shapes from HF-format models;
    the generator's width and depth from the generator when given, else from the config."""
    from electra.hf import copy_state, load_hf

    if not 1 <= len(sources) <= 2:
        raise ElectraError("--init-from takes a discriminator and optionally a generator")
    if cfg.objective not in RTD:
        raise ElectraError(f"--init-from starts a discriminator, and objective {cfg.objective!r} trains none")
    if cfg.objective == "electric" and len(sources) == 2:
        raise ElectraError(
            "--init-from: objective electric's generator is a two-tower cloze model; give the discriminator alone"
        )
    disc = load_hf(sources[0], "discriminator")
    gen = load_hf(sources[1], "generator") if len(sources) == 2 else None
    model_cfg = replace(
        disc.config,
        hidden_dropout_prob=cfg.model.hidden_dropout_prob,
        attention_probs_dropout_prob=cfg.model.attention_probs_dropout_prob,
    )
    updates: dict[str, Any] = {"model": model_cfg}
    if gen is not None:
        g = gen.config
        if g.vocab_size != model_cfg.vocab_size or g.embedding_size != model_cfg.embedding_size:
            raise ElectraError(
                f"generator {sources[1]} does not fit discriminator {sources[0]} (vocabulary or embedding size differ)"
            )
        updates["generator_size"] = g.hidden_size / model_cfg.hidden_size
        updates["generator_layers"] = g.num_hidden_layers / model_cfg.num_hidden_layers
    cfg = replace(cfg, **updates)
    if gen is not None and (cfg.generator_model.hidden_size, cfg.generator_model.num_hidden_layers) != (
        gen.config.hidden_size,
        gen.config.num_hidden_layers,
    ):
        raise ElectraError(f"generator {sources[1]} has a shape this toolkit cannot express")
    tokenizer = load_tokenizer(sources[0])
    torch.manual_seed(cfg.seed)  # for the generator, when none is given
    model = init.build(cfg, SpecialIds.from_tokenizer(tokenizer))
    if gen is not None:  # first, so that the discriminator's copy of the shared embeddings wins
        copy_state(gen, model.generator, f"generator {sources[1]}")
    copy_state(disc, model.discriminator, f"discriminator {sources[0]}")
    return cfg, model, tokenizer
