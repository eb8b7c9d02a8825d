"""Which part of a pretrained encoder makes it finetune worse than random weights?

Finetune SST-2 (a fixed 2,000-example subset, 3 epochs, seed 0, the official recipe) from a pretrained encoder
whose named parameters are swapped for the random initialisation of the same shape, one variant at a time, and
print dev accuracy and the training loss of each epoch. Variants: pretrained, random, qk (queries and keys random),
attention, ffn, layernorm, embeddings, top1 / top2 (the top layers re-initialised), rescale (every weight matrix
scaled to its initial norm), emb_rescale (the embedding tables only), nodrop (no dropout while finetuning), lr=X.

    PYTHONPATH=src python benchmarks/finetune_swap.py RUN --glue-dir ../shared/data/glue pretrained qk nodrop lr=1e-3
    PYTHONPATH=src python benchmarks/finetune_swap.py random:tiny --tokenizer VOCAB --glue-dir ... pretrained nodrop
"""

from __future__ import annotations

import argparse
import copy
import dataclasses

import torch

from electra.config import FinetuneConfig
from electra.finetune.encoder import load_encoder
from electra.finetune.glue import evaluate, finetune_run, prepare_task
from electra.finetune.tasks import parse_tasks
from electra.probe import random_encoder

SWAPS = {
    "random": lambda k: True,
    "qk": lambda k: ".attention.self.query." in k or ".attention.self.key." in k,
    "attention": lambda k: ".attention." in k,
    "ffn": lambda k: ".intermediate." in k or (".output." in k and ".attention." not in k),
    "layernorm": lambda k: "LayerNorm" in k,
    "embeddings": lambda k: k.startswith(("embeddings.", "embeddings_project.")),
}


def variant(name: str, encoder, initial, top: int):
    """(encoder, model-config changes, finetuning-config changes) for one variant."""
    e = copy.deepcopy(encoder)
    state, init = e.state_dict(), initial.state_dict()
    if name in SWAPS or name.startswith("top"):
        layers = {f".layer.{top - 1 - i}." for i in range(int(name[3:]))} if name.startswith("top") else set()
        pick = SWAPS.get(name, lambda k: any(s in f".{k}" for s in layers))
        for k in state:
            if pick(k):
                state[k].copy_(init[k])
    elif name in ("rescale", "emb_rescale"):
        for k in state:
            if state[k].dim() == 2 and (name == "rescale" or k.endswith("embeddings.weight")):
                state[k].mul_(init[k].norm() / state[k].norm())
    elif name == "nodrop":
        return e, {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}, {"head_dropout": 0.0}
    elif name.startswith("lr="):
        return e, {}, {"learning_rate": float(name[3:])}
    elif name != "pretrained":
        raise SystemExit(f"unknown variant {name!r}")
    return e, {}, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a run, an HF directory, or random:<preset>")
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--tokenizer")
    parser.add_argument("--glue-dir", required=True)
    parser.add_argument("--checkpoint", default="latest")
    args = parser.parse_args()
    (task,) = parse_tasks("sst2")
    encoder, model_cfg, tok = load_encoder(args.model, args.tokenizer, args.checkpoint)
    initial = random_encoder(model_cfg, 0)
    if encoder is None:
        encoder = copy.deepcopy(initial)
    cfg = FinetuneConfig(max_train_examples=2000, epochs=3).resolve(model_cfg, task)
    data = prepare_task(task, args.glue_dir, tok, cfg)
    for name in args.variants:
        e, model_changes, ft_changes = variant(name, encoder, initial, model_cfg.num_hidden_layers)
        losses: list[float] = []
        _, outputs = finetune_run(
            data,
            e,
            dataclasses.replace(model_cfg, **model_changes),
            dataclasses.replace(cfg, **ft_changes),
            0,
            torch.device("cpu"),
            tok.pad_id,
            None,
            losses,
        )
        acc = evaluate(task, data.evals, outputs)["acc"]
        print(
            f"{name:14s} SST-2 acc {acc:.2f}  train loss per epoch {', '.join(f'{x:.3f}' for x in losses)}", flush=True
        )


if __name__ == "__main__":
    main()
