"""What pretraining did to an encoder's representations, for any checkpoint (`electra diagnose`, docs/pretraining.md):
per-layer collapse and attention statistics, word-table geometry, the discriminator's logits, weight movement."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from electra import init
from electra.errors import ElectraError
from electra.model import ELECTRA, ElectraModel, SelfAttention, attention_bias

if TYPE_CHECKING:
    from electra.config import PretrainConfig
    from electra.tokenizer import WordPiece


def _masked_mean_cosine(h: Tensor, mask: Tensor) -> float:
    """Mean cosine between distinct real token states of the same sequence, averaged over sequences."""
    u = F.normalize(h.float(), dim=-1) * mask[..., None]
    n = mask.sum(1)
    gram_sum = (u.sum(1) ** 2).sum(-1)  # sum over all ordered pairs, self-pairs included
    pairs = n * (n - 1)
    ok = pairs > 0
    return float(((gram_sum[ok] - n[ok]) / pairs[ok]).mean())


def _mean_pairwise_cosine(x: Tensor) -> float:
    """Mean cosine between distinct rows of x (R, D)."""
    if x.shape[0] < 2:
        return float("nan")
    u = F.normalize(x.float(), dim=-1)
    n = u.shape[0]
    return float(((u.sum(0) ** 2).sum() - n) / (n * (n - 1)))


def effective_rank(states: Tensor) -> float:
    """exp(entropy of the normalised singular values) of the centred (N, D) matrix (Roy & Vetterli, 2007):
    D for isotropic states, 1 when all states lie on one line."""
    x = states.float() - states.float().mean(0, keepdim=True)
    s = torch.linalg.svdvals(x)
    p = s / s.sum().clamp(min=1e-12)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def _attention_entropy(module: SelfAttention, x: Tensor, mask: Tensor | None) -> float:
    """Mean entropy (nats) of the attention distributions of every head at every real query position."""
    B, L, H = x.shape
    nh = module.num_heads
    q = module.query(x).view(B, L, nh, H // nh).transpose(1, 2)
    k = module.key(x).view(B, L, nh, H // nh).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(H // nh)  # (B, nh, L, L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    p = scores.softmax(-1)
    ent = -(p * p.clamp(min=1e-12).log()).sum(-1)  # (B, nh, L)
    if mask is None:
        return float(ent.mean())
    real = mask[:, 0, 0, :].float()[:, None, :].expand_as(ent)
    return float((ent * real).sum() / real.sum())


@torch.no_grad()
def representation_stats(encoder: ElectraModel, batch: dict[str, Tensor]) -> dict[str, Any]:
    """Statistics of `encoder`'s states on `batch` in eval mode; layer 0 is the embedding output (after the
    projection to the hidden size), layer i the output of block i."""
    was_training = encoder.training
    encoder.eval()
    ids, am = batch["input_ids"], batch["attention_mask"]
    tt = batch.get("token_type_ids", torch.zeros_like(ids))
    mask = am.float()
    key_mask = attention_bias(am)
    x = encoder.embeddings_project(encoder.embeddings(ids, tt))
    states, entropies = [x], []
    for layer in encoder.encoder.layer:
        entropies.append(_attention_entropy(layer.attention.self, x, key_mask))
        x = layer(x, key_mask)
        states.append(x)
    real = am.bool()
    layers = []
    for i, h in enumerate(states):
        stats = {"layer": i, "norm": float(h.float().norm(dim=-1)[real].mean())}
        stats |= {"token_cosine": _masked_mean_cosine(h, mask), "cls_cosine": _mean_pairwise_cosine(h[:, 0])}
        layers.append(stats | {"attention_entropy": entropies[i] if i < len(entropies) else None})
    final = states[-1][real]
    n = mask.sum(1)
    max_entropy = float((n * n.log()).sum() / n.sum())  # uniform attention, averaged over queries like the above
    norms = {name: m for name, m in encoder.named_modules() if isinstance(m, nn.LayerNorm)}
    gains = {
        name: {"gain_mean": float(m.weight.mean()), "gain_std": float(m.weight.std())} for name, m in norms.items()
    }
    layer_norms = {name: gains[name] | {"bias_abs_mean": float(m.bias.abs().mean())} for name, m in norms.items()}
    encoder.train(was_training)
    return {
        "layers": layers,
        "effective_rank": effective_rank(final),
        "hidden_size": final.shape[-1],
        "uniform_attention_entropy": max_entropy,
        "layer_norms": layer_norms,
        **embedding_stats(encoder, ids[real]),
    }


@torch.no_grad()
def embedding_stats(encoder: ElectraModel, used_ids: Tensor, sample: int = 2000, seed: int = 0) -> dict[str, float]:
    """Word-embedding geometry (row norms, mean pairwise cosine) of the ids in `used_ids` and of a sample of others."""
    table = encoder.embeddings.word_embeddings.weight
    used = torch.unique(used_ids)
    unused_mask = torch.ones(table.shape[0], dtype=torch.bool)
    unused_mask[used] = False
    unused = unused_mask.nonzero().squeeze(1)
    g = torch.Generator().manual_seed(seed)
    unused = unused[torch.randperm(len(unused), generator=g)[:sample]]
    used = used[torch.randperm(len(used), generator=g)[:sample]]
    pos = encoder.embeddings.position_embeddings.weight
    return {
        "word_norm_used": float(table[used].norm(dim=-1).mean()),
        "word_norm_unused": float(table[unused].norm(dim=-1).mean()),
        "word_cosine_used": _mean_pairwise_cosine(table[used]),
        "word_cosine_unused": _mean_pairwise_cosine(table[unused]),
        "word_cosine_used_unused": float(
            F.normalize(table[used].float(), dim=-1).mean(0) @ F.normalize(table[unused].float(), dim=-1).mean(0)
        ),
        "position_norm": float(pos.norm(dim=-1).mean()),
    }


@torch.no_grad()
def discriminator_stats(model: ELECTRA, batch: dict[str, Tensor], seed: int = 0) -> dict[str, float]:
    """The discriminator's logits on original and replaced real tokens of `batch` (its own generator, `seed`)."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], g)
    model.train(was_training)
    real = batch["attention_mask"].bool()
    logits, labels = out.disc_logits[real].float(), out.disc_labels[real]
    orig, repl = logits[~labels], logits[labels]
    return {
        "logit_mean_original": float(orig.mean()),
        "logit_std_original": float(orig.std()),
        "logit_mean_replaced": float(repl.mean()) if len(repl) else float("nan"),
        "logit_std_replaced": float(repl.std()) if len(repl) > 1 else float("nan"),
        "replaced_fraction": float(labels.float().mean()),
    }


WEIGHT_GROUPS = (
    ("embeddings", ("embeddings.",)),
    ("attention query/key", ("attention.self.query", "attention.self.key")),
    ("attention value/output", ("attention.self.value", "attention.output.dense")),
    ("feed-forward", ("intermediate.dense", "output.dense")),
)


def _weight_group(name: str, electra: bool = True) -> str | None:
    """The group of a weight matrix or table of an ELECTRA model (None: a bias, a LayerNorm, a head); a masked-LM
    run's one encoder (stored as the generator) is "encoder", the replace-mlm masked LM "masked LM"."""
    owner = {"generator": "generator" if electra else "encoder", "masked_lm": "masked LM"}.get(
        name.partition(".")[0], "discriminator"
    )
    for group, parts in WEIGHT_GROUPS:
        if any(part in name for part in parts) and name.endswith(".weight") and "LayerNorm" not in name:
            return f"{owner} {group}"
    return None


@torch.no_grad()
def weight_change(model: ELECTRA, initial: ELECTRA) -> dict[str, float]:
    """||W - W0|| / ||W0|| over each group of weight matrices, W0 the same model's initial weights; shared tables
    count once (for the discriminator), tables that start at zero (gdes deltas) not at all."""
    start = dict(initial.named_parameters())
    electra = model.cfg.objective != "mlm"  # a generator beside a full-size model
    moved: dict[str, list[float]] = {}
    for name, p in model.named_parameters():  # a shared table once, under the discriminator (registered first)
        group = _weight_group(name, electra)
        if group is None:
            continue
        w0 = start[name].detach().float()
        if not w0.any():
            continue
        sums = moved.setdefault(group, [0.0, 0.0])
        sums[0] += float((p.detach().float() - w0).pow(2).sum())
        sums[1] += float(w0.pow(2).sum())
    return {group: math.sqrt(d / n) for group, (d, n) in moved.items()}


@torch.no_grad()
def word_move_top_share(model: ELECTRA, initial: ELECTRA) -> float | None:
    """The share of the word-table movement ||W - W0||^2 along its top singular direction (near 1: pretraining
    added one direction, in short runs word frequency); None when the table did not move (a frozen table)."""
    start = init.word_table(initial)[1]
    sv = torch.linalg.svdvals(init.word_table(model)[1] - start)
    total = float(sv.pow(2).sum())
    return None if total <= 1e-12 * float(start.pow(2).sum()) else float(sv[0] ** 2) / total


def initial_model(run_dir: str, cfg: PretrainConfig, tokenizer: WordPiece) -> ELECTRA | None:
    """The weights a pretraining run started from, rebuilt from its seed and, for `--word-init ppmi` or
    `--output-bias-init prior`, from its data (None for an --init-from run, or when that data is gone)."""
    from electra.checkpoint import read_run_config
    from electra.data import PretrainLoader
    from electra.objective import SpecialIds
    from electra.train.pretrain import init_word_vectors

    run_config = read_run_config(run_dir)
    if run_config.get("run", {}).get("init_from"):
        return None
    with torch.random.fork_rng(devices=[]):  # leaves the caller's random state as it was
        torch.manual_seed(cfg.seed)  # as electra.train.pretrain does before building the model
        model = init.build(cfg, SpecialIds.from_tokenizer(tokenizer))
    if cfg.word_init == "random" and cfg.output_bias_init == "zero":
        return model
    data = run_config.get("data", {})
    try:
        loader = PretrainLoader(data.get("path", ""), cfg.batch_size, seed=cfg.seed)
    except (ElectraError, OSError):
        return None
    if loader.meta.get("key") != data.get("key"):
        return None
    if cfg.output_bias_init == "prior":
        init.init_output_biases(model, torch.from_numpy(loader.token_counts(cfg.model.vocab_size)))
    if cfg.word_init == "ppmi":
        init_word_vectors(model, loader)
    return model


def run_weight_change(run_dir: str | Path, checkpoint: str = "latest") -> dict[str, float]:
    """`weight_change` of a pretraining run's checkpoint against the run's initialisation ({} for --init-from)."""
    from electra.checkpoint import load_run

    model, cfg, tokenizer = load_run(run_dir, checkpoint)
    initial = initial_model(str(run_dir), cfg, tokenizer)
    return {} if initial is None else weight_change(model, initial)


def text_batch(tokenizer: WordPiece, texts: list[str], max_length: int = 128) -> dict[str, Tensor]:
    """[CLS] text [SEP] for each text, padded: a batch for the statistics above."""
    from electra.finetune.features import Features, collate, encode_texts

    ids, types = encode_texts(tokenizer, texts, [None] * len(texts), max_length)
    batch = collate(Features(ids, types, np.zeros(len(texts), np.int64)), range(len(texts)), tokenizer.pad_id)
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def diagnose_models(
    models: list[str],
    texts: str = "builtin",
    glue_dir: str | None = None,
    checkpoint: str = "latest",
    n: int = 64,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """`representation_stats` (and `discriminator_stats` for run directories) for a randomly initialised encoder
    of the first model's shape and for each model, on the first `n` test texts of a probe set."""
    from electra.checkpoint import is_run_dir, load_run
    from electra.loading import load_model
    from electra.probe import load_probe_set, random_encoder

    probe_set = load_probe_set(texts, glue_dir)
    sample = [a for a, _, _ in probe_set.test[:n]]
    rows: list[dict[str, Any]] = []
    for source in models:
        encoder, tokenizer = load_model(source, "encoder", checkpoint)
        batch = text_batch(tokenizer, sample)
        if not rows:
            rows.append(
                {"model": "random initialisation", **representation_stats(random_encoder(encoder.config, seed), batch)}
            )
        row = {"model": source, **representation_stats(encoder, batch)}
        if is_run_dir(source):
            model, cfg, run_tokenizer = load_run(source, checkpoint)
            if hasattr(model, "discriminator"):  # electra, electra-15
                row["discriminator"] = discriminator_stats(model, batch, seed)
            initial = initial_model(source, cfg, run_tokenizer)
            if initial is not None:
                row["weight_change"] = weight_change(model, initial)
                row["word_move_top_share"] = word_move_top_share(model, initial)
        rows.append(row)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table per model: one line per layer, then the global statistics."""
    out = []
    for r in rows:
        out.append(
            f"{r['model']}: effective rank {r['effective_rank']:.1f} of {r['hidden_size']}; word embeddings: "
            f"norm {r['word_norm_used']:.3f} (tokens in the batch) / {r['word_norm_unused']:.3f} (others), "
            f"mean cosine {r['word_cosine_used']:.3f} / {r['word_cosine_unused']:.3f}"
        )
        out.append(
            f"  layer   norm  token-cos  1-[CLS]-cos  attention entropy (uniform: {r['uniform_attention_entropy']:.2f})"
        )
        for layer in r["layers"]:
            ent = layer["attention_entropy"]
            out.append(
                f"  {layer['layer']:>5}  {layer['norm']:5.2f}  {layer['token_cosine']:9.3f}  "
                f"{1 - layer['cls_cosine']:11.2e}  {'' if ent is None else f'{ent:.2f}'}"
            )
        if "discriminator" in r:
            d = r["discriminator"]
            out.append(
                f"  discriminator logits: original {d['logit_mean_original']:+.2f} ± "
                f"{d['logit_std_original']:.2f}, replaced {d['logit_mean_replaced']:+.2f} ± "
                f"{d['logit_std_replaced']:.2f}"
            )
        if "weight_change" in r:
            moved = ", ".join(f"{group} {value:.1%}" for group, value in r["weight_change"].items())
            out.append(f"  moved from the initialisation (||W - W0|| / ||W0||): {moved}")
        if r.get("word_move_top_share") is not None:
            out.append(
                f"  word-table movement along its top direction: {r['word_move_top_share']:.0%} (near 100 %: one "
                "added direction, in short runs word frequency; docs/pretraining.md)"
            )
        elif "word_move_top_share" in r:
            out.append("  the word table did not move from its start (frozen: --freeze-word-embeddings)")
    return "\n".join(out)
