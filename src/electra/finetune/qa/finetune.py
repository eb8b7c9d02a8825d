"""Finetune on SQuAD 1.1 or 2.0 with the official recipe and QA defaults; resumable runs over seeds (docs/qa.md)."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch

from electra.config import FinetuneConfig, ModelConfig, check_fields, from_dict
from electra.errors import ElectraError
from electra.finetune.fields import RecipeFields
from electra.finetune.qa.data import QAFeature, SquadData, collate, featurize, load_squad, subsample
from electra.finetune.qa.evaluate import squad_metrics
from electra.finetune.qa.model import Head, HeadOptions, QuestionAnswerer, build_qa_model
from electra.finetune.qa.postprocess import NA_THRESHOLD, apply_null_threshold, predict_answers
from electra.finetune.recipe import autocast, finetune_optimizer, fit, reduce_losses
from electra.finetune.results import load_runs
from electra.finetune.sweep import Encoder, Run, Sweep, TaskRuns, claimed
from electra.io import write_json

if TYPE_CHECKING:
    from tqdm import tqdm
    from typing_extensions import Unpack

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


class SquadFields(RecipeFields, total=False):
    """`finetune_squad`'s recipe keywords: `FinetuneConfig` fields (the head is its own argument) and `QAOptions`."""

    max_train_examples: int | None
    max_query_length: int
    doc_stride: int
    n_best_size: int
    max_answer_length: int
    joint_prediction: bool
    beam_size: int
    answerable_classifier: bool
    answerable_uses_start_logits: bool
    answerable_weight: float
    qa_na_threshold: float | None


def task_name(version: str) -> str:
    return "squad11" if version == "1.1" else "squad20"


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

    lengths = [len(f.input_ids) for f in features]
    return fit(model, opt, len(features), cfg, seed, device, step_losses, progress, lengths=lengths)


def predict(
    model: QuestionAnswerer, features: list[QAFeature], device: torch.device, batch_size: int, pad_id: int
) -> list[dict[str, np.ndarray]]:
    """Each feature's outputs as numpy arrays, per-position logits cut to the feature's own length; features are
    batched shortest first under inference mode and returned in their own order."""
    model.eval()
    order = sorted(range(len(features)), key=lambda i: len(features[i].input_ids))
    results: list[dict[str, np.ndarray]] = [{} for _ in features]
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            b = collate(features, rows, pad_id)
            out = model(b["input_ids"].to(device), b["attention_mask"].to(device), b["token_type_ids"].to(device))
            out = {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy() for k, v in out.items()}
            for i, row in enumerate(rows):
                n = len(features[row].input_ids)
                r = {k: v[i] for k, v in out.items()}
                for k in ("start_logits", "end_logits"):
                    if k in r:
                        r[k] = r[k][:n]
                results[row] = r
    return results


@dataclass
class SquadRuns(TaskRuns):
    """SQuAD in a sweep: the QA head, the official metrics and files (predictions, null odds, n-best lists)."""

    qa: QAOptions
    head: Head
    train_features: list[QAFeature]
    dev: SquadData
    dev_features: list[QAFeature]
    shown: ClassVar[tuple[str, ...] | None] = ("exact", "f1")
    saves_tokenizer: ClassVar[bool] = True

    def run(self, seed: int, progress: tqdm) -> Run:
        e, cfg = self.encoder, self.cfg
        net = build_qa_model(e.weights, cfg.encoder_config(e.config), self.head, self.qa.head_options(), init_seed=seed)
        net = net.to(e.device)
        losses = train(net, self.train_features, cfg, seed, e.device, e.tokenizer.pad_id, progress)
        answers, null_odds, nbest, metrics = self.evaluate(net)
        return Run(net, (answers, null_odds, nbest), metrics, losses)

    def evaluate(
        self, model: QuestionAnswerer
    ) -> tuple[dict[str, str], dict[str, float], dict[str, Any], dict[str, float]]:
        """(predictions in the official format, null odds, n-best lists, official metrics) on the dev set."""
        dev, tok, qa = self.dev, self.encoder.tokenizer, self.qa
        results = predict(model, self.dev_features, self.encoder.device, self.cfg.eval_batch_size, tok.pad_id)
        answers, null_odds, nbest = predict_answers(
            dev.examples, self.dev_features, results, tok, dev.version, qa.n_best_size, qa.max_answer_length
        )
        gold = {ex.qid: ex.answers for ex in dev.examples}
        if dev.version == "1.1":
            return answers, {}, nbest, squad_metrics(gold, answers, "1.1")
        threshold = null_threshold(qa, model.head)
        metrics = squad_metrics(gold, answers, "2.0", null_odds, threshold)
        metrics["na_threshold"] = threshold
        return apply_null_threshold(answers, null_odds, threshold), null_odds, nbest, metrics

    def write(self, directory: Path, seed: int, run: Run, config: dict[str, Any]) -> dict[str, Any]:
        answers, null_odds, nbest = run.outputs
        version = self.dev.version
        write_json(directory / "predictions.json", answers)
        if version == "2.0":
            write_json(directory / "null_odds.json", {q: float(v) for q, v in null_odds.items()})
        write_json(directory / "nbest.json", nbest)
        return {"task": self.name, "version": version, "head": self.head, "seed": seed, "metrics": run.metrics}


def write_results(out: Path, version: str, model: str) -> dict[str, Any]:
    runs = load_runs(out, task_name(version))
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
    **recipe: Unpack[SquadFields],
) -> dict[str, Any]:
    """Finetune `model` on SQuAD `version` from `train` and `dev` (official JSON or `hf:squad[_v2]`); `recipe`:
    `FinetuneConfig` and `QAOptions` fields. Returns {"runs": [...], "median": {...}} (OUT/results.json)."""
    if runs < 1:
        raise ElectraError(f"runs must be at least 1, got {runs}")
    if version not in ("1.1", "2.0"):
        raise ElectraError(f"SQuAD version must be '1.1' or '2.0', got {version!r}")
    if head not in ("official", "transformers"):
        raise ElectraError(f"QA head must be 'official' or 'transformers', got {head!r}")
    qa_keys = {f.name for f in dataclasses.fields(QAOptions)}
    qa = from_dict(QAOptions, {k: v for k, v in recipe.items() if k in qa_keys}, "the QA options")
    fields = {k: v for k, v in recipe.items() if k not in qa_keys}
    cfg = dataclasses.replace(from_dict(FinetuneConfig, fields, "the finetuning options"), head=head)
    _check_sources(train, dev)

    def prepare(name: str, encoder: Encoder) -> SquadRuns:
        task_cfg = resolve(cfg, encoder.config, "max_length" in fields)
        encoder.check_length(task_cfg)
        train_data = load_squad(train, version, "train")
        n_available = len(train_data.examples)
        train_data = subsample(train_data, task_cfg.max_train_examples)
        dev_data = load_squad(dev, version, "dev")
        sizes = dict(max_length=task_cfg.max_length, max_query_length=qa.max_query_length, doc_stride=qa.doc_stride)
        train_features = featurize(train_data.examples, encoder.tokenizer, training=True, **sizes)
        dev_features = featurize(dev_data.examples, encoder.tokenizer, training=False, **sizes)
        record = {"version": version, "head": head, "qa": asdict(qa), "train": train, "dev": dev}
        record |= {"tokenizer_lowercase": encoder.tokenizer.lowercase, "n_train_available": n_available}
        record |= {"n_train": len(train_data.examples), "n_train_features": len(train_features)}
        record |= {"skipped_train_answers": train_data.skipped, "n_dev": len(dev_data.examples)}
        record["n_dev_features"] = len(dev_features)
        parts = (qa, head, train_features, dev_data, dev_features)
        return SquadRuns(name, f"SQuAD {version}", task_cfg, len(train_features), record, encoder, *parts)

    out = Path(out)
    with claimed(out, "SQuAD finetuning"):
        where = Sweep(out, model, tokenizer, checkpoint, device, save_model, quiet)
        where.run([task_name(version)], range(seed, seed + runs), prepare, desc="squad")
        return write_results(out, version, model)


def _check_sources(train: str, dev: str) -> None:
    """Before anything is loaded or written: local files exist; for hf: sources, the hub can be reached."""
    from electra import hub

    for role, src in (("train", str(train)), ("dev", str(dev))):
        if src.startswith("hf:"):
            hub.require(hub.parse_dataset(src, role).name, f"--{role} dataset")
        elif not Path(src).is_file():
            raise ElectraError(f"--{role} {src}: no such file; expected a SQuAD JSON file, hf:squad or hf:squad_v2")
