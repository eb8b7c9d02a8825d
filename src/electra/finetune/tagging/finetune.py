"""Finetune an ELECTRA encoder on a tagging task (chunking, NER, POS) over seeds, resumable; GLUE's recipe with
max_length 256 and no head dropout (docs/tagging.md: the recipe and the files of OUT/tagging/run_<seed>/)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from electra import io
from electra.config import FinetuneConfig, ModelConfig, from_dict
from electra.errors import ElectraError
from electra.finetune.fields import FinetuneFields
from electra.finetune.recipe import autocast, finetune_optimizer, fit
from electra.finetune.results import read_record
from electra.finetune.sweep import Encoder, Run, Sweep, TaskRuns, claimed, run_dir
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
    from tqdm import tqdm
    from typing_extensions import Unpack

    from electra.model import ElectraModel
    from electra.tokenizer import WordPiece

TAGGING_DEFAULTS = {"max_length": 256, "head_dropout": 0.0, "epochs": 3}
SUBDIR = "tagging"


def resolve(cfg: FinetuneConfig, model_cfg: ModelConfig) -> FinetuneConfig:
    """A copy with the size-dependent defaults filled in as for GLUE (`FinetuneConfig.with_defaults`), 3 epochs."""
    return cfg.with_defaults(model_cfg, TAGGING_DEFAULTS["epochs"])


@dataclass
class TaggingData:
    labels: list[str]
    scheme: str | None  # BIO, BIOES or None (accuracy only)
    splits: dict[str, TaggingSplit]  # train, dev, test (when given)
    features: dict[str, TaggingFeatures]
    n_train_available: int


def read_data(
    train: str, dev: str, test: str | None, token_column: int, tag_column: int, tok: WordPiece, cfg: FinetuneConfig
) -> TaggingData:
    """Read and featurize every split; the label set is train's, and dev or test tags it lacks are refused."""
    splits = {"train": load_split(train, "train", token_column, tag_column)}
    splits["dev"] = load_split(dev, "dev", token_column, tag_column)
    if test is not None:
        splits["test"] = load_split(test, "test", token_column, tag_column)
    labels = label_list(splits["train"])
    for name in ("dev", "test"):
        if name in splits:
            check_tags(splits[name], labels)
    n_available = len(splits["train"].sentences)
    splits["train"] = subsample(splits["train"], cfg.max_train_examples)
    label2id = {t: i for i, t in enumerate(labels)}
    features = {k: featurize(s, tok, label2id, cfg.max_length) for k, s in splits.items()}
    return TaggingData(labels, span_scheme(labels), splits, features, n_available)


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

    lengths = [len(q) for q in feats.input_ids]
    losses = fit(model, opt, len(feats), cfg, seed, device, step_losses, progress, lengths=lengths)
    if epoch_losses is not None:
        epoch_losses.extend(losses)
    return model


@torch.inference_mode()
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
    order = sorted(range(len(feats)), key=lambda i: len(feats.input_ids[i]))  # shortest first: little padding
    out: list[list[str]] = [[] for _ in range(len(feats))]
    for start in range(0, len(order), cfg.eval_batch_size):
        rows = order[start : start + cfg.eval_batch_size]
        b = collate(feats, rows, pad_id)
        with autocast(device, cfg.precision):
            logits = model(b["input_ids"].to(device), b["attention_mask"].to(device), b["token_type_ids"].to(device))
        best = logits.argmax(-1).cpu()
        for i, r in enumerate(rows):
            out[r] = [labels[int(best[i, p])] for p in feats.word_positions[r] if p >= 0]
    return out


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


@dataclass
class TaggingRuns(TaskRuns):
    """The tagging task of a sweep: a tag per word, span metrics, predictions_{dev,test}.txt in CoNLL text."""

    data: TaggingData
    saves_tokenizer: ClassVar[bool] = True

    def run(self, seed: int, progress: tqdm) -> Run:
        e, data, losses = self.encoder, self.data, []
        pad = e.tokenizer.pad_id
        trained = train_tagger(data, e.weights, e.config, self.cfg, seed, e.device, pad, progress, losses)
        preds = {
            k: predict_tags(trained, data.features[k], data.labels, e.device, self.cfg, pad)
            for k in ("dev", "test")
            if k in data.splits
        }
        return Run(trained, preds, evaluate(data, preds), losses)

    def write(self, directory: Path, seed: int, run: Run, config: dict[str, Any]) -> dict[str, Any]:
        data, metrics = self.data, run.metrics
        fallback = "O" if "O" in data.labels else data.labels[0]  # for the words truncation left unpredicted
        for name, preds in run.outputs.items():
            io.write_text(directory / f"predictions_{name}.txt", conll_predictions(data.splits[name], preds, fallback))
        score = "f1" if "f1" in metrics else "accuracy"
        record = {"task": SUBDIR, "seed": seed, "metrics": metrics, "score": metrics.get(score), "score_name": score}
        record |= {"scheme": data.scheme, "n_train": len(data.splits["train"].sentences)}
        record |= {"n_train_available": data.n_train_available}
        record["truncated_words"] = {k: f.truncated_words for k, f in data.features.items()}
        return record | {"train_loss_per_epoch": config["train_loss_per_epoch"]}


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
    **recipe: Unpack[FinetuneFields],
) -> dict[str, Any]:
    """Finetune `model` to tag the words of `train` (CoNLL-style or `hf:...`), evaluated on `dev` (and `test`), over
    `runs` seeds; `recipe`: FinetuneConfig fields. Returns {"runs": [...], "median": {...}} (OUT/results.json)."""
    if runs < 1:
        raise ElectraError(f"runs must be at least 1, got {runs}")
    fields = {**{k: v for k, v in TAGGING_DEFAULTS.items() if k != "epochs"}, **recipe}
    cfg = from_dict(FinetuneConfig, fields, "the finetuning options")

    def prepare(name: str, encoder: Encoder) -> TaggingRuns:
        task_cfg = resolve(cfg, encoder.config)
        encoder.check_length(task_cfg)
        data = read_data(train, dev, test, token_column, tag_column, encoder.tokenizer, task_cfg)
        record = {"labels": data.labels, "scheme": data.scheme}
        record |= {k: data.splits[k].source if k in data.splits else None for k in ("train", "dev", "test")}
        record |= {"token_column": token_column, "tag_column": tag_column, "token_type_id": TOKEN_TYPE}
        return TaggingRuns(name, "tagging", task_cfg, len(data.features["train"]), record, encoder, data)

    out = Path(out)
    seeds = range(seed, seed + runs)
    with claimed(out, "tagging sweep"):
        where = Sweep(out, model, tokenizer, checkpoint, device, save_model, quiet)
        where.run([SUBDIR], seeds, prepare, desc="tagging")
        done = [read_record(run_dir(out, SUBDIR, s) / "metrics.json") for s in seeds]
        keys = sorted({k for r in done for k in r["metrics"]})
        median = {k: statistics.median(r["metrics"][k] for r in done if k in r["metrics"]) for k in keys}
        results = {"runs": done, "median": median}
        io.write_json(out / "results.json", results)
    return results
