"""Finetune on SQuAD 1.1 or 2.0 with the official ELECTRA recipe; resumable runs over seeds.

    OUT/squad11|squad20/run_<seed>/config.json        what the run was (model, recipe, QA options, data)
    OUT/squad11|squad20/run_<seed>/predictions.json   {question id: answer} in the official format ("" = no answer)
    OUT/squad20/run_<seed>/null_odds.json             {question id: null odds} (SQuAD 2.0)
    OUT/squad11|squad20/run_<seed>/nbest.json         the n-best lists (text, probability, start/end scores)
    OUT/squad11|squad20/run_<seed>/model.safetensors  with save_model (and tokenizer/, for `export_qa_run`)
    OUT/squad11|squad20/run_<seed>/metrics.json       written last: its presence marks the run complete
    OUT/squad11|squad20/results.json                  every complete run and the median of each metric
    OUT/results.json                                  the same, for the version finetuned last

The recipe is the GLUE one (`electra.finetune.recipe.FinetuneConfig`: Adam without bias correction, layer-wise decay,
warm-up 10 %, clipping 1.0, batch 32, summed loss) with the QA defaults of google-research/electra
configure_finetuning.py: 2 epochs, max_length 512, max_query_length 64, doc_stride 128, n_best_size 20,
max_answer_length 30, the answerable classifier (weight 0.5, using the start distribution), joint prediction with
beam 20, and the SQuAD 2.0 no-answer threshold -2.75 on the null odds.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from electra import __version__, io
from electra.config import FinetuneConfig, ModelConfig, check_fields, from_dict
from electra.errors import ElectraError
from electra.finetune.qa.data import QAFeature, SquadData, collate, featurize, load_squad, subsample
from electra.finetune.qa.evaluate import squad_metrics
from electra.finetune.qa.model import Head, HeadOptions, QuestionAnswerer, build_qa_model
from electra.finetune.qa.postprocess import NA_THRESHOLD, apply_null_threshold, predict_answers
from electra.finetune.recipe import autocast, finetune_optimizer, fit, reduce_losses, train_steps
from electra.io import write_json
from electra.tokenizer import WordPiece

QA_EPOCHS = 2  # google-research/electra configure_finetuning.py, for "squad" / "qa" tasks
QA_MAX_LENGTH = 512


@dataclass
class QAOptions:
    """What SQuAD adds to the finetuning recipe (google-research/electra configure_finetuning.py defaults)."""

    max_query_length: int = 64
    doc_stride: int = 128
    n_best_size: int = 20
    max_answer_length: int = 30
    joint_prediction: bool = True
    beam_size: int = 20
    answerable_classifier: bool = True
    answerable_uses_start_logits: bool = True
    answerable_weight: float = 0.5
    qa_na_threshold: float | None = None  # None: -2.75 for the answerable classifier's odds, else 0.0

    def __post_init__(self):
        check_fields(self)
        for name in ("max_query_length", "doc_stride", "n_best_size", "max_answer_length", "beam_size"):
            if getattr(self, name) < 1:
                raise ElectraError(f"{name} must be at least 1, got {getattr(self, name)}")

    def head_options(self) -> HeadOptions:
        return HeadOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(HeadOptions)})


def task_name(version: str) -> str:
    return "squad11" if version == "1.1" else "squad20"


def run_dir(out: str | Path, version: str, seed: int) -> Path:
    return Path(out) / task_name(version) / f"run_{seed}"


def null_threshold(qa: QAOptions, head: Head) -> float:
    """The no-answer threshold: the official -2.75 for the answerable classifier's logit; 0.0 for the null-score
    difference (the convention of google-research/bert run_squad.py and transformers' run_qa.py)."""
    if qa.qa_na_threshold is not None:
        return qa.qa_na_threshold
    return NA_THRESHOLD if head == "official" and qa.answerable_classifier else 0.0


def resolve(cfg: FinetuneConfig, model: ModelConfig, max_length_given: bool) -> FinetuneConfig:
    """Size-dependent defaults (`FinetuneConfig.with_defaults`) and the QA ones: 2 epochs, length 512."""
    cfg = cfg.with_defaults(model, QA_EPOCHS)
    return dataclasses.replace(cfg, max_length=cfg.max_length if max_length_given else QA_MAX_LENGTH)


# ---------------------------------------------------------------------------------------------- one run


def train(
    model: QuestionAnswerer,
    features: list[QAFeature],
    cfg: FinetuneConfig,
    seed: int,
    device: torch.device,
    pad_id: int,
    progress: tqdm | None = None,
) -> list[float]:
    """The official training loop over the features (a new shuffle each epoch); the mean loss of each epoch."""
    opt = finetune_optimizer(model, model.config.num_hidden_layers, cfg, device, head_prefixes=model.head_prefixes)

    def step_losses(rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        b = {k: v.to(device) for k, v in collate(features, rows, pad_id).items()}
        with autocast(device, cfg.precision):
            out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"], b["start_positions"])
        losses = model.loss(out, b["start_positions"], b["end_positions"], b["is_impossible"])
        return reduce_losses(losses, cfg), losses.detach().sum(), len(rows)

    return fit(model, opt, len(features), cfg, seed, device, step_losses, progress)


@torch.no_grad()
def predict(
    model: QuestionAnswerer, features: list[QAFeature], device: torch.device, batch_size: int, pad_id: int
) -> list[dict[str, np.ndarray]]:
    """Each feature's outputs as numpy arrays, per-position logits cut to the feature's own length (so that
    nothing depends on how the features were batched)."""
    model.eval()
    results: list[dict[str, np.ndarray]] = []
    for start in range(0, len(features), batch_size):
        rows = list(range(start, min(start + batch_size, len(features))))
        b = collate(features, rows, pad_id)
        out = model(b["input_ids"].to(device), b["attention_mask"].to(device), b["token_type_ids"].to(device))
        out = {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy() for k, v in out.items()}
        for i, row in enumerate(rows):
            n = len(features[row].input_ids)
            r = {k: v[i] for k, v in out.items()}
            for k in ("start_logits", "end_logits"):
                if k in r:
                    r[k] = r[k][:n]
            results.append(r)
    return results


def evaluate_run(
    model: QuestionAnswerer,
    dev: SquadData,
    dev_features: list[QAFeature],
    tok: WordPiece,
    qa: QAOptions,
    device: torch.device,
    batch_size: int,
) -> tuple[dict[str, str], dict[str, float], dict[str, Any], dict[str, float]]:
    """(predictions in the official format, null odds, n-best lists, official metrics) on the dev set."""
    results = predict(model, dev_features, device, batch_size, tok.pad_id)
    answers, null_odds, nbest = predict_answers(
        dev.examples, dev_features, results, tok, dev.version, qa.n_best_size, qa.max_answer_length
    )
    gold = {ex.qid: ex.answers for ex in dev.examples}
    if dev.version == "1.1":
        return answers, {}, nbest, squad_metrics(gold, answers, "1.1")
    threshold = null_threshold(qa, model.head)
    metrics = squad_metrics(gold, answers, "2.0", null_odds, threshold)
    metrics["na_threshold"] = threshold
    return apply_null_threshold(answers, null_odds, threshold), null_odds, nbest, metrics


# ---------------------------------------------------------------------------------------------- sweep


def _load_runs(out: Path, version: str) -> list[dict[str, Any]]:
    import json

    runs = []
    for f in sorted((out / task_name(version)).glob("run_*/metrics.json")):
        try:
            record = json.loads(f.read_text())
        except (OSError, ValueError) as err:
            raise ElectraError(f"cannot read {f}: {err}") from None
        record["dir"] = str(f.parent)
        runs.append(record)
    return sorted(runs, key=lambda r: r.get("seed", 0))


def write_results(out: Path, version: str, model: str) -> dict[str, Any]:
    runs = _load_runs(out, version)
    keys = [k for k, v in runs[0]["metrics"].items() if isinstance(v, (int, float))] if runs else []
    median = {k: statistics.median(r["metrics"][k] for r in runs if k in r["metrics"]) for k in keys}
    results = {"task": task_name(version), "version": version, "model": model, "runs": runs, "median": median}
    write_json(out / task_name(version) / "results.json", results)  # kept when OUT also holds the other version
    write_json(out / "results.json", results)
    return results


def finetune_squad(
    model: str,
    out: str | Path,
    *,
    train: str,
    dev: str,
    version: Literal["1.1", "2.0"] = "1.1",
    head: Literal["official", "transformers"] = "official",
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
    """Finetune `model` (a pretraining run, an HF directory or hub id, or `random:<preset>` with `tokenizer`) on
    SQuAD `version`: `train` and `dev` are official-format JSON files or `hf:squad` / `hf:squad_v2`. `recipe`:
    `FinetuneConfig` fields (learning_rate, epochs, batch_size, max_length, ...) and `QAOptions` fields
    (doc_stride, joint_prediction, qa_na_threshold, ...). Returns {"runs": [...], "median": {...}}, also written
    to OUT/results.json.

        finetune_squad("runs/small", "runs/squad", train="train-v1.1.json", dev="dev-v1.1.json")
    """
    if runs < 1:
        raise ElectraError(f"runs must be at least 1, got {runs}")
    if version not in ("1.1", "2.0"):
        raise ElectraError(f"SQuAD version must be '1.1' or '2.0', got {version!r}")
    if head not in ("official", "transformers"):
        raise ElectraError(f"QA head must be 'official' or 'transformers', got {head!r}")
    qa_keys = {f.name for f in dataclasses.fields(QAOptions)}
    qa = from_dict(QAOptions, {k: v for k, v in recipe.items() if k in qa_keys}, "the QA options")
    recipe = {k: v for k, v in recipe.items() if k not in qa_keys}
    max_length_given = "max_length" in recipe
    if max_train_examples is not None:
        recipe["max_train_examples"] = max_train_examples
    cfg = from_dict(FinetuneConfig, recipe, "the finetuning options")
    cfg = dataclasses.replace(cfg, head=head)
    _check_sources(train, dev)
    out = Path(out)
    seeds = list(range(seed, seed + runs))
    with io.claimed(out, "SQuAD finetuning", worth_keeping=lambda d: any(d.glob("*/run_*/metrics.json"))):
        for tmp in out.glob("**/.*.tmp"):  # what a killed run left half-written
            tmp.unlink(missing_ok=True)
        pending = [s for s in seeds if not (run_dir(out, version, s) / "metrics.json").is_file()]
        if len(pending) < len(seeds) and not quiet:
            print(f"{len(seeds) - len(pending)} of {len(seeds)} runs already complete in {out}", file=sys.stderr)
        if pending:
            where = {"train_src": train, "dev_src": dev, "version": version, "head": head, "seeds": pending}
            opts = {"device": device, "tokenizer": tokenizer, "checkpoint": checkpoint, "save_model": save_model}
            _sweep(model, out, cfg=cfg, qa=qa, quiet=quiet, max_length_given=max_length_given, **where, **opts)
        return write_results(out, version, model)


def _check_sources(train: str, dev: str) -> None:
    """Before anything is loaded or written: local files exist; for hf: sources, the hub can be reached."""
    from electra import hub

    for role, src in (("train", str(train)), ("dev", str(dev))):
        if src.startswith("hf:"):
            hub.require(hub.parse_dataset(src, role).name, f"--{role} dataset")
        elif not Path(src).is_file():
            raise ElectraError(f"--{role} {src}: no such file; expected a SQuAD JSON file, hf:squad or hf:squad_v2")


def _sweep(
    model: str,
    out: Path,
    *,
    train_src: str,
    dev_src: str,
    version: str,
    head: Head,
    seeds: list[int],
    device: str,
    tokenizer: str | None,
    checkpoint: str,
    save_model: bool,
    quiet: bool,
    cfg: FinetuneConfig,
    qa: QAOptions,
    max_length_given: bool,
) -> None:
    """Train and evaluate every seed in `seeds` (the data is read and featurized once)."""
    from electra.finetune.encoder import load_encoder

    dev_ = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    encoder, model_cfg, tok = load_encoder(model, tokenizer, checkpoint)
    cfg = resolve(cfg, model_cfg, max_length_given)
    if cfg.max_length > model_cfg.max_position_embeddings:
        raise ElectraError(
            f"max_length {cfg.max_length} exceeds the model's {model_cfg.max_position_embeddings} positions; "
            f"pass max_length={model_cfg.max_position_embeddings} or less"
        )
    train_data = load_squad(train_src, version, "train")
    n_available = len(train_data.examples)
    train_data = subsample(train_data, cfg.max_train_examples)
    dev_data = load_squad(dev_src, version, "dev")
    feats = dict(max_length=cfg.max_length, max_query_length=qa.max_query_length, doc_stride=qa.doc_stride)
    train_features = featurize(train_data.examples, tok, training=True, **feats)
    dev_features = featurize(dev_data.examples, tok, training=False, **feats)
    steps = train_steps(len(train_features), cfg)
    with tqdm(total=steps * len(seeds), desc="squad", unit="step", disable=quiet, file=sys.stderr) as bar:
        for s in seeds:
            started = time.time()
            net = build_qa_model(encoder, cfg.encoder_config(model_cfg), head, qa.head_options(), init_seed=s).to(dev_)
            losses = train(net, train_features, cfg, s, dev_, tok.pad_id, bar)
            predictions, null_odds, nbest, metrics = evaluate_run(
                net, dev_data, dev_features, tok, qa, dev_, cfg.eval_batch_size
            )
            d = run_dir(out, version, s)
            d.mkdir(parents=True, exist_ok=True)
            config = {
                "task": task_name(version),
                "version": version,
                "head": head,
                "seed": s,
                "model": model,
                "checkpoint": checkpoint,
                "model_config": asdict(model_cfg),
                "finetune": asdict(cfg),
                "qa": asdict(qa),
                "train": train_src,
                "dev": dev_src,
                "tokenizer": tok.source,
                "tokenizer_fingerprint": tok.fingerprint(),
                "tokenizer_lowercase": tok.lowercase,
                "n_train_available": n_available,
                "n_train": len(train_data.examples),
                "n_train_features": len(train_features),
                "skipped_train_answers": train_data.skipped,
                "n_dev": len(dev_data.examples),
                "n_dev_features": len(dev_features),
                "device": str(dev_),
                "electra_version": __version__,
                "seconds": round(time.time() - started, 1),
                "train_loss_per_epoch": [round(x, 6) for x in losses],
            }
            write_json(d / "config.json", config)
            write_json(d / "predictions.json", predictions)
            if version == "2.0":
                write_json(d / "null_odds.json", {q: float(v) for q, v in null_odds.items()})
            write_json(d / "nbest.json", nbest)
            if save_model:
                save_weights(net, tok, d)
            write_json(
                d / "metrics.json",
                {"task": task_name(version), "version": version, "head": head, "seed": s, "metrics": metrics},
            )
            if not quiet:
                bar.write(f"SQuAD {version} seed {s}: exact {metrics['exact']:.2f}, f1 {metrics['f1']:.2f}")


def save_weights(model: QuestionAnswerer, tok: WordPiece, directory: Path) -> None:
    """model.safetensors (written beside and renamed) and the tokenizer (tokenizer/), for `export_qa_run`."""
    io.write_safetensors(directory / "model.safetensors", model.state_dict())
    tok.save(directory / "tokenizer")
