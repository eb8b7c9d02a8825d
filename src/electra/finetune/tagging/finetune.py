"""Finetune an ELECTRA encoder on a tagging task (chunking, NER, POS), several seeds, resumable.

One run per seed in `OUT/tagging/run_<seed>/`: config.json (the recipe and the label list), predictions_dev.txt
(and predictions_test.txt), model.safetensors + tokenizer/ with `save_model`, and metrics.json written last: a run
whose metrics.json exists is complete and skipped when the sweep is started again. OUT/results.json holds every
requested run's metrics and their medians.

Recipe: GLUE's (`electra.finetune.recipe.FinetuneConfig`, the official finetuning hyperparameters of
google-research/electra configure_finetuning.py: Adam without bias correction, layer-wise decay 0.8 / 0.9 for 24
layers, lr 3e-4 / 1e-4 / 5e-5 by size, warm-up 10 %, batch 32, 3 epochs, clipping 1.0), with the official tagging
defaults: max_length 256 (configure_finetuning.py for "chunk") and no dropout on the head (tagging_tasks.py).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from electra import __version__, io
from electra.config import FinetuneConfig, ModelConfig, from_dict
from electra.errors import ElectraError
from electra.finetune.recipe import autocast, finetune_optimizer, fit, train_steps
from electra.finetune.tagging.data import (
    TOKEN_TYPE,
    TaggingFeatures,
    TaggingSplit,
    check_tags,
    collate,
    featurize,
    label_list,
    load_split,
    span_scheme,
    subsample,
)
from electra.finetune.tagging.model import TokenTagger, build_tagger, tagging_loss, tagging_metrics

if TYPE_CHECKING:
    from electra.model import ElectraModel
    from electra.tokenizer import WordPiece

TAGGING_DEFAULTS = {"max_length": 256, "head_dropout": 0.0, "epochs": 3}
SUBDIR = "tagging"


def run_dir(out: str | Path, seed: int) -> Path:
    return Path(out) / SUBDIR / f"run_{seed}"


def resolve(cfg: FinetuneConfig, model_cfg: ModelConfig) -> FinetuneConfig:
    """A copy with the size-dependent defaults filled in as for GLUE (`FinetuneConfig.with_defaults`), 3 epochs."""
    return cfg.with_defaults(model_cfg, TAGGING_DEFAULTS["epochs"])


# ---------------------------------------------------------------------------------------------- data


@dataclass
class TaggingData:
    labels: list[str]
    scheme: str | None  # BIO, BIOES or None (accuracy only)
    splits: dict[str, TaggingSplit]  # train, dev, test (when given)
    features: dict[str, TaggingFeatures]
    n_train_available: int
    token_column: int = 0
    tag_column: int = -1

    @property
    def label2id(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.labels)}


def read_data(
    train: str,
    dev: str,
    test: str | None = None,
    token_column: int = 0,
    tag_column: int = -1,
    max_train_examples: int | None = None,
) -> TaggingData:
    """Read every split, take the label set from train, refuse dev/test tags it lacks (features: `featurize_data`)."""
    splits = {"train": load_split(train, "train", token_column, tag_column)}
    splits["dev"] = load_split(dev, "dev", token_column, tag_column)
    if test is not None:
        splits["test"] = load_split(test, "test", token_column, tag_column)
    labels = label_list(splits["train"])
    for name in ("dev", "test"):
        if name in splits:
            check_tags(splits[name], labels)
    n_available = len(splits["train"].sentences)
    splits["train"] = subsample(splits["train"], max_train_examples)
    return TaggingData(labels, span_scheme(labels), splits, {}, n_available, token_column, tag_column)


def featurize_data(data: TaggingData, tokenizer: WordPiece, max_length: int) -> TaggingData:
    data.features = {k: featurize(s, tokenizer, data.label2id, max_length) for k, s in data.splits.items()}
    return data


# ---------------------------------------------------------------------------------------------- one run


def train_tagger(
    data: TaggingData,
    encoder: ElectraModel | None,
    model_cfg: ModelConfig,
    cfg: FinetuneConfig,
    seed: int,
    device: torch.device,
    pad_id: int,
    progress: tqdm | None = None,
    epoch_losses: list[float] | None = None,
) -> TokenTagger:
    """Train one seed (a new shuffle every epoch); `epoch_losses` receives each epoch's mean loss per word."""
    tagger_cfg = cfg.encoder_config(model_cfg)
    model = build_tagger(encoder, tagger_cfg, len(data.labels), cfg.head_dropout, init_seed=seed).to(device)
    opt = finetune_optimizer(model, model_cfg.num_hidden_layers, cfg, device, head_prefixes=("classifier.",))
    feats = data.features["train"]

    def step_losses(rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        b = {k: v.to(device) for k, v in collate(feats, rows, pad_id).items()}
        with autocast(device, cfg.precision):
            logits = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        loss, n_words = tagging_loss(logits, b["labels"], cfg.loss_reduction)
        return loss, loss.detach() * (1 if cfg.loss_reduction == "sum" else n_words), n_words

    losses = fit(model, opt, len(feats), cfg, seed, device, step_losses, progress)
    if epoch_losses is not None:
        epoch_losses.extend(losses)
    return model


@torch.no_grad()
def predict_tags(
    model: TokenTagger,
    feats: TaggingFeatures,
    labels: list[str],
    device: torch.device,
    cfg: FinetuneConfig,
    pad_id: int,
) -> list[list[str]]:
    """Per sentence, the predicted tag of every word that has a position (argmax at its first piece); words cut
    by truncation are left out, so a list may be shorter than its sentence."""
    model.eval()
    out: list[list[str]] = []
    for start in range(0, len(feats), cfg.eval_batch_size):
        rows = range(start, min(start + cfg.eval_batch_size, len(feats)))
        b = collate(feats, rows, pad_id)
        with autocast(device, cfg.precision):
            logits = model(b["input_ids"].to(device), b["attention_mask"].to(device), b["token_type_ids"].to(device))
        best = logits.argmax(-1).cpu()
        for i, r in enumerate(rows):
            out.append([labels[int(best[i, p])] for p in feats.word_positions[r] if p >= 0])
    return out


def fallback_tag(labels: list[str]) -> str:
    """What the predictions file shows for a word cut by truncation (it has no prediction)."""
    return "O" if "O" in labels else labels[0]


def conll_predictions(split: TaggingSplit, preds: list[list[str]], fallback: str) -> str:
    """CoNLL text: `token gold predicted` (or `token predicted` without gold), a blank line between sentences."""
    blocks = []
    for s, p in zip(split.sentences, preds, strict=True):
        p = p + [fallback] * (len(s.words) - len(p))
        rows = zip(s.words, s.tags, p, strict=True) if s.tags is not None else zip(s.words, p, strict=True)
        blocks.append("\n".join(" ".join(r) for r in rows))
    return "\n\n".join(blocks) + "\n"


def evaluate(data: TaggingData, preds: dict[str, list[list[str]]]) -> dict[str, float]:
    """Dev metrics (accuracy, precision/recall/f1 for BIO/BIOES), then test_* ones when the test set has tags."""
    metrics: dict[str, float] = {}
    for name in ("dev", "test"):
        split = data.splits.get(name)
        if split is None or not split.labelled:
            continue
        gold = [s.tags for s in split.sentences]
        prefix = "" if name == "dev" else "test_"
        metrics.update({prefix + k: v for k, v in tagging_metrics(gold, preds[name], data.scheme).items()})
    return metrics


def save_run(
    d: Path,
    data: TaggingData,
    seed: int,
    preds: dict[str, list[list[str]]],
    metrics: dict[str, float],
    config: dict[str, Any],
    model: TokenTagger | None = None,
    tokenizer: WordPiece | None = None,
) -> dict[str, Any]:
    """config.json, predictions, weights; metrics.json last (it marks the run complete)."""
    d.mkdir(parents=True, exist_ok=True)
    io.write_json(d / "config.json", config)
    fallback = fallback_tag(data.labels)
    for name in ("dev", "test"):
        if name in data.splits:
            io.write_text(d / f"predictions_{name}.txt", conll_predictions(data.splits[name], preds[name], fallback))
    if model is not None:
        io.write_safetensors(d / "model.safetensors", model.state_dict())
        tokenizer.save(d / "tokenizer")
    record = {
        "task": "tagging",
        "seed": seed,
        "metrics": metrics,
        "score": metrics.get("f1", metrics.get("accuracy")),
        "score_name": "f1" if "f1" in metrics else "accuracy",
        "scheme": data.scheme,
        "n_train": len(data.splits["train"].sentences),
        "n_train_available": data.n_train_available,
        "truncated_words": {k: f.truncated_words for k, f in data.features.items()},
        "train_loss_per_epoch": config.get("train_loss_per_epoch"),
    }
    io.write_json(d / "metrics.json", record)
    return record


# ---------------------------------------------------------------------------------------------- API


def _medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = sorted({k for r in runs for k in r["metrics"]})
    return {k: statistics.median(r["metrics"][k] for r in runs if k in r["metrics"]) for k in keys}


def finetune_tagging(
    model: str,
    out: str | Path,
    *,
    train: str,
    dev: str,
    test: str | None = None,
    token_column: int = 0,
    tag_column: int = -1,
    runs: int = 1,
    seed: int = 0,
    device: str = "auto",
    tokenizer: str | None = None,
    checkpoint: str = "latest",
    save_model: bool = False,
    quiet: bool = False,
    max_train_examples: int | None = None,
    **recipe: Any,
) -> dict[str, Any]:
    """Finetune `model` (a pretraining run, an HF directory, a hub id or `random:<preset>`) to tag the words of
    `train` (CoNLL-style file or `hf:NAME[:CONFIG][@SPLIT][#TAGS_COLUMN]`), evaluated on `dev` (and `test`),
    `runs` seeds from `seed`. `recipe`: FinetuneConfig fields (learning_rate, epochs, max_length, ...).
    Returns {"runs": [each run's metrics.json], "median": {metric: median}}, also written to OUT/results.json.

        from electra.finetune.tagging import finetune_tagging
        finetune_tagging("runs/small", "runs/chunk", train="chunk/train.txt", dev="chunk/dev.txt", runs=3)
    """
    if runs < 1:
        raise ElectraError(f"runs must be at least 1, got {runs}")
    recipe = {**{k: v for k, v in TAGGING_DEFAULTS.items() if k != "epochs"}, **recipe}
    recipe["max_train_examples"] = max_train_examples
    cfg = from_dict(FinetuneConfig, recipe, "the finetuning options")
    out = Path(out)
    seeds = list(range(seed, seed + runs))
    finished = lambda d: any(d.glob(f"{SUBDIR}/run_*/metrics.json"))  # noqa: E731
    with io.claimed(out, "tagging sweep", worth_keeping=finished):
        for tmp in out.glob(f"{SUBDIR}/**/.*.tmp"):  # what a killed sweep left half-written
            tmp.unlink(missing_ok=True)
        pending = [s for s in seeds if not (run_dir(out, s) / "metrics.json").is_file()]
        if len(pending) < len(seeds) and not quiet:
            print(
                f"{len(seeds) - len(pending)} of {len(seeds)} runs already complete in {out}; continuing",
                file=sys.stderr,
            )
        if pending:
            data = read_data(train, dev, test, token_column, tag_column, cfg.max_train_examples)
            _sweep(model, out, pending, cfg, data, device, tokenizer, checkpoint, save_model, quiet)
        done = [_read_json(run_dir(out, s) / "metrics.json") for s in seeds]
        results = {"runs": done, "median": _medians(done)}
        io.write_json(out / "results.json", results)
    return results


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ElectraError(f"cannot read {path}: {err}") from None


def _sweep(
    model: str,
    out: Path,
    seeds: list[int],
    cfg: FinetuneConfig,
    data: TaggingData,
    device: str,
    tokenizer: str | None,
    checkpoint: str,
    save_model: bool,
    quiet: bool,
) -> None:
    from electra.finetune.encoder import load_encoder

    dev_ = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    encoder, model_cfg, tok = load_encoder(model, tokenizer, checkpoint)
    if cfg.max_length > model_cfg.max_position_embeddings:
        raise ElectraError(
            f"max_length {cfg.max_length} exceeds the model's {model_cfg.max_position_embeddings} positions; "
            f"pass max_length={model_cfg.max_position_embeddings} or less"
        )
    cfg = resolve(cfg, model_cfg)
    featurize_data(data, tok, cfg.max_length)
    total = train_steps(len(data.features["train"]), cfg) * len(seeds)
    with tqdm(total=total, desc="tagging", unit="step", disable=quiet, file=sys.stderr) as bar:
        for s in seeds:
            started = time.time()
            losses: list[float] = []
            trained = train_tagger(data, encoder, model_cfg, cfg, s, dev_, tok.pad_id, bar, losses)
            preds = {
                k: predict_tags(trained, data.features[k], data.labels, dev_, cfg, tok.pad_id)
                for k in ("dev", "test")
                if k in data.splits
            }
            metrics = evaluate(data, preds)
            config = {
                "task": "tagging",
                "seed": s,
                "model": model,
                "checkpoint": checkpoint,
                "model_config": asdict(model_cfg),
                "finetune": asdict(cfg),
                "labels": data.labels,
                "scheme": data.scheme,
                "train": data.splits["train"].source,
                "dev": data.splits["dev"].source,
                "test": data.splits["test"].source if "test" in data.splits else None,
                "token_column": data.token_column,
                "tag_column": data.tag_column,
                "token_type_id": TOKEN_TYPE,
                "tokenizer": tok.source,
                "tokenizer_fingerprint": tok.fingerprint(),
                "device": str(dev_),
                "electra_version": __version__,
                "seconds": round(time.time() - started, 1),
                "train_loss_per_epoch": [round(x, 6) for x in losses],
            }
            save_run(run_dir(out, s), data, s, preds, metrics, config, trained if save_model else None, tok)
            if not quiet:
                bar.write(f"tagging seed {s}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
