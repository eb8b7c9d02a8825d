"""A linear probe: are an encoder's frozen features becoming useful? Logistic regressions on the final layer's
[CLS] state and mean-pooled states, against the same probe on random weights (docs/pretraining.md)."""

from __future__ import annotations

import ast
import csv
import functools
import inspect
import json
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from electra import dist, init
from electra.config import ModelConfig, PretrainConfig
from electra.data.sources import BUILTIN_TOPICS, builtin_documents, paragraphs
from electra.errors import ElectraError
from electra.model import ELECTRA, ElectraModel, init_weights
from electra.stats import probe_margin
from electra.tokenizer import WordPiece
from electra.train.rundir import Setup

MAX_TRAIN, MAX_TEST = 2000, 1000


@dataclass
class ProbeSet:
    """A labelled set split once: texts (a, optional b) and integer labels for train and test."""

    name: str
    labels: list[str]
    train: list[tuple[str, str | None, int]]
    test: list[tuple[str, str | None, int]]

    @property
    def majority(self) -> float:
        """Test accuracy of always predicting the train set's most frequent label."""
        counts = np.bincount([y for *_, y in self.train], minlength=len(self.labels))
        top = int(counts.argmax())
        return float(np.mean([y == top for *_, y in self.test]))


def _split(name: str, rows: list[tuple[str, str | None, str]], seed: int = 0) -> ProbeSet:
    labels = sorted({r[2] for r in rows})
    if len(labels) < 2:
        raise ElectraError(f"probe set {name}: needs at least 2 labels, found {len(labels)}")
    index = {label: i for i, label in enumerate(labels)}
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    n_test = min(MAX_TEST, len(rows) // 3)
    test = [(a, b, index[y]) for a, b, y in rows[:n_test]]
    train = [(a, b, index[y]) for a, b, y in rows[n_test:][:MAX_TRAIN]]
    return ProbeSet(name, labels, train, test)


@functools.lru_cache(maxsize=2)
def builtin_probe_set(per_topic: int = 300) -> ProbeSet:
    """Docstring paragraphs of the probe packages, labelled by topic (at most `per_topic` each); read once."""
    root = Path(sysconfig.get_paths()["stdlib"])
    in_corpus = {line for doc in builtin_documents() for line in doc}  # common phrases also found elsewhere
    rows = []
    for topic, packages in BUILTIN_TOPICS.items():
        found: list[str] = []
        for package in packages:
            for path in sorted((root / package).rglob("*.py")):
                if {"test", "tests"} & set(path.relative_to(root).parts):
                    continue
                try:
                    tree = ast.parse(path.read_bytes())
                except (SyntaxError, ValueError, OSError):
                    continue
                for node in ast.walk(tree):
                    if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                        doc = ast.get_docstring(node, clean=False)
                        if doc:
                            found.extend(paragraphs(inspect.cleandoc(doc)))
        found = sorted(set(found) - in_corpus)  # once each, and never a line of the pretraining corpus
        random.Random(topic).shuffle(found)
        rows += [(text, None, topic) for text in found[:per_topic]]
    if len({r[2] for r in rows}) < 2:
        raise ElectraError(f"the built-in probe set needs the standard library's sources, not found under {root}")
    return _split("builtin", rows)


def glue_probe_set(task_name: str, glue_dir: str | Path | None) -> ProbeSet:
    """A GLUE classification task: a fixed subset of train for training, dev (capped) for testing."""
    from electra.finetune.features import load_split
    from electra.finetune.tasks import parse_tasks

    (task,) = parse_tasks(task_name)
    if task.is_regression:
        raise ElectraError(f"probe: {task.display} is a regression task; choose a classification task")
    where = glue_dir if glue_dir is not None else "the hub"
    splits = {}
    for name in ("train", "dev"):
        split = load_split(task, name, glue_dir)
        if split is None or not split.examples:
            raise ElectraError(f"probe: no {task.display} {name} set in {where}")
        splits[name] = [(e.text_a, e.text_b, task.labels[e.label]) for e in split.examples]
    rng = random.Random(0)
    train = rng.sample(splits["train"], min(MAX_TRAIN, len(splits["train"])))
    test = splits["dev"][:MAX_TEST]
    labels = list(task.labels)
    index = {label: i for i, label in enumerate(labels)}
    return ProbeSet(
        f"glue:{task.name}", labels, [(a, b, index[y]) for a, b, y in train], [(a, b, index[y]) for a, b, y in test]
    )


def file_probe_set(path: str | Path) -> ProbeSet:
    """CSV/TSV (header row) or JSONL with `text`, optional `text_b`, and `label` columns."""
    path = Path(path)
    if not path.is_file():
        raise ElectraError(f"probe set {path} does not exist")
    try:
        if path.suffix.lower() in (".jsonl", ".json"):
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            with open(path, encoding="utf-8-sig", newline="") as f:
                records = list(csv.DictReader(f, delimiter=delimiter))
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as err:
        raise ElectraError(f"probe set {path} cannot be read: {err}") from None
    rows = []
    for i, r in enumerate(records, start=1):
        if not isinstance(r, dict) or not isinstance(r.get("text"), str) or r.get("label") in (None, ""):
            found = ", ".join(r) if isinstance(r, dict) else type(r).__name__
            raise ElectraError(f"probe set {path}: row {i} needs a text and a label column (found: {found})")
        rows.append((r["text"], r.get("text_b") or None, str(r["label"])))
    return _split(str(path), rows)


def load_probe_set(spec: str, glue_dir: str | Path | None = None) -> ProbeSet:
    if spec == "builtin":
        return builtin_probe_set()
    if spec.startswith("glue:"):
        return glue_probe_set(spec[5:], glue_dir)
    return file_probe_set(spec)


@torch.no_grad()
def features(
    encoder: ElectraModel,
    tokenizer: WordPiece,
    rows: list[tuple[str, str | None, int]],
    max_length: int = 128,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """([CLS] states, mean-pooled states) of the final layer, each (N, H), in eval mode."""
    from electra.finetune.features import Features, collate, encode_texts

    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    ids, types = encode_texts(tokenizer, [a for a, _, _ in rows], [b for _, b, _ in rows], max_length)
    encoded = Features(ids, types, np.zeros(len(rows), np.int64))
    order = sorted(range(len(rows)), key=lambda i: len(ids[i]))  # little padding per batch
    H = encoder.config.hidden_size
    cls_out, mean_out = np.zeros((len(rows), H), np.float32), np.zeros((len(rows), H), np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        b = {k: v.to(device) for k, v in collate(encoded, idx, tokenizer.pad_id).items()}
        h = encoder(b["input_ids"], b["attention_mask"], b["token_type_ids"]).float()
        m = b["attention_mask"].float()[..., None]
        cls_out[idx] = h[:, 0].cpu().numpy()
        mean_out[idx] = ((h * m).sum(1) / m.sum(1)).cpu().numpy()
    encoder.train(was_training)
    return cls_out, mean_out


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Test accuracy of a standardised, L2-regularised logistic regression (fixed settings, deterministic)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    clf.fit(train_x, train_y)
    return float((clf.predict(test_x) == test_y).mean())


def probe(encoder: ElectraModel, tokenizer: WordPiece, probe_set: ProbeSet, max_length: int = 128) -> dict[str, float]:
    """{"probe_cls", "probe_mean"}: test accuracies of the two linear probes on `encoder`'s frozen features."""
    train_y = np.array([y for *_, y in probe_set.train])
    test_y = np.array([y for *_, y in probe_set.test])
    tr_cls, tr_mean = features(encoder, tokenizer, probe_set.train, max_length)
    te_cls, te_mean = features(encoder, tokenizer, probe_set.test, max_length)
    return {
        "probe_cls": fit_probe(tr_cls, train_y, te_cls, test_y),
        "probe_mean": fit_probe(tr_mean, train_y, te_mean, test_y),
    }


def random_encoder(cfg: ModelConfig, seed: int = 0) -> ElectraModel:
    """An encoder of the same shape with the pretraining initialisation: the no-pretraining baseline."""
    torch.manual_seed(seed)
    encoder = ElectraModel(cfg)
    init_weights(encoder, cfg.initializer_range)
    return encoder.eval()


def probe_models(
    models: list[str],
    probe_spec: str = "builtin",
    glue_dir: str | None = None,
    checkpoint: str = "latest",
    random_seeds: int = 3,
) -> list[dict[str, Any]]:
    """The probe for each model, preceded by the same probe on `random_seeds` random encoders of the first model's
    shape (their mean and range) and followed by the majority class; each row says whether its best probe is above,
    within or below the random range widened by the test set's noise (`probe_margin`)."""
    from electra.loading import load_model

    if random_seeds < 1:
        raise ElectraError(f"--random-seeds must be at least 1, got {random_seeds}")
    probe_set = load_probe_set(probe_spec, glue_dir)
    rows: list[dict[str, Any]] = []
    lo = hi = 0.0
    for source in models:
        encoder, tokenizer = load_model(source, "encoder", checkpoint)
        if not rows:
            runs = [probe(random_encoder(encoder.config, s), tokenizer, probe_set, 128) for s in range(random_seeds)]
            best = [max(r["probe_cls"], r["probe_mean"]) for r in runs]
            lo, hi = min(best), max(best)
            rows.append(
                {
                    "model": "random initialisation",
                    "seeds": random_seeds,
                    "probe_cls": float(np.mean([r["probe_cls"] for r in runs])),
                    "probe_mean": float(np.mean([r["probe_mean"] for r in runs])),
                    "best_min": lo,
                    "best_max": hi,
                }
            )
        result = probe(encoder, tokenizer, probe_set, 128)
        best = max(result["probe_cls"], result["probe_mean"])
        n = len(probe_set.test)
        verdict = (
            "above" if best > hi + probe_margin(hi, n) else "below" if best < lo - probe_margin(lo, n) else "within"
        )
        rows.append({"model": source, **result, "against_random": verdict})
    rows.append({"model": "majority class", "probe_cls": probe_set.majority, "probe_mean": probe_set.majority})
    return rows


class LiveProbe:
    """The linear probe on the encoder being trained, beside its baseline: the same probe on random weights."""

    def __init__(self, probe_set: ProbeSet, tokenizer: WordPiece, max_length: int, baseline: dict[str, float]):
        self.probe_set, self.tokenizer, self.max_length, self.baseline = probe_set, tokenizer, max_length, baseline

    @classmethod
    def start(
        cls, name: str, glue_dir: str | None, cfg: PretrainConfig, tokenizer: WordPiece, device: torch.device
    ) -> LiveProbe | None:
        """The probe `name` ("none": no probe; see `load_probe_set`) with its random-weights baseline."""
        if name == "none":
            return None
        try:
            probe_set = load_probe_set(name, glue_dir)
        except ElectraError as err:
            dist.print0(f"  (no probe: {err})", flush=True)
            return None
        encoder_cfg = cfg.generator_model if cfg.objective == "mlm" else cfg.model  # (what ELECTRA.delivered gives)
        rng_state = torch.get_rng_state()  # the baseline's initialisation must not move the run's random stream
        result = probe(random_encoder(encoder_cfg, cfg.seed).to(device), tokenizer, probe_set, cfg.max_length)
        torch.set_rng_state(rng_state)
        baseline = {
            "probe_random_cls": result["probe_cls"],
            "probe_random_mean": result["probe_mean"],
            "probe_majority": probe_set.majority,
            "probe_test_examples": len(probe_set.test),  # how far apart two probes must be to differ (report)
        }
        dist.print0(
            f"  probe {probe_set.name} ({len(probe_set.train)} train / {len(probe_set.test)} test): random "
            f"initialisation {result['probe_cls']:.3f} ([CLS]) {result['probe_mean']:.3f} (mean), majority "
            f"class {probe_set.majority:.3f}",
            flush=True,
        )
        return cls(probe_set, tokenizer, cfg.max_length, baseline)

    def __call__(self, model: ELECTRA) -> dict[str, float]:
        encoder = model.delivered()
        if not model.cfg.remove_top_word_direction:
            return {**probe(encoder, self.tokenizer, self.probe_set, self.max_length), **self.baseline}
        # probe what the run delivers (electra.loading.load_model), then put the trained table back bit for bit
        table = init.word_table(model)[0]
        trained = table.detach().clone()
        init.remove_top_word_direction(model)
        try:
            return {**probe(encoder, self.tokenizer, self.probe_set, self.max_length), **self.baseline}
        finally:
            with torch.no_grad():
                table.copy_(trained)


def live_probe(setup: Setup, device: torch.device) -> LiveProbe | None:
    """The probe a pretraining run asked for (`--probe`, `--glue-dir`), as an evaluator of `electra.train.pretrain`."""
    return LiveProbe.start(setup.opts.probe, setup.opts.glue_dir, setup.cfg, setup.tokenizer, device)
