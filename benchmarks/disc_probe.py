"""How well does a pretraining run's discriminator detect *unigram* replacements on held-out text?

The run's own held-out metrics score the discriminator against its own generator, whose samples get harder as it
learns; this probe holds the task fixed: replace ~13 % of the real tokens of held-out examples (never [CLS]/[SEP])
by tokens drawn from the corpus' unigram distribution (estimated on every 14th training example), and report the
discriminator's AUC and accuracy against the all-original baseline. AUC 0.5 = no better than chance.

    python benchmarks/disc_probe.py RUN_DIR --data DATA_DIR [--checkpoint step_400] [--batches 8]
"""

from __future__ import annotations

import argparse
import itertools

import torch
from sklearn.metrics import roc_auc_score

from electra.checkpoint import load_run
from electra.data.loader import PretrainLoader


def unigram_distribution(loader: PretrainLoader, vocab_size: int, special: list[int]) -> torch.Tensor:
    """Token frequencies over a spread-out sample of the training examples; special tokens get zero."""
    ids = loader.collate(loader.train_index[::14])["input_ids"].flatten()
    counts = torch.bincount(ids, minlength=vocab_size).float()
    counts[special] = 0
    return counts


@torch.no_grad()
def probe(run: str, data: str, checkpoint: str = "latest", batches: int = 8, rate: float = 0.13, seed: int = 0):
    model, cfg, tok = load_run(run, checkpoint)
    loader = PretrainLoader(data, 16)
    special = [tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id]
    unigram = unigram_distribution(loader, cfg.model.vocab_size, special)
    g = torch.Generator().manual_seed(seed)
    labels, scores = [], []
    for b in itertools.islice(loader.holdout(64), batches):
        ids, mask, types = b["input_ids"], b["attention_mask"], b["token_type_ids"]
        chosen = (torch.rand(ids.shape, generator=g) < rate) & mask.bool() & (ids != tok.cls_id) & (ids != tok.sep_id)
        samples = torch.multinomial(unigram, ids.numel(), replacement=True, generator=g).view(ids.shape)
        fake = torch.where(chosen, samples, ids)
        real = mask.bool()
        labels.append(((fake != ids) & real)[real])
        scores.append(model.discriminator(fake, mask, types)[real])
    y, s = torch.cat(labels).numpy(), torch.cat(scores).float().numpy()
    return {
        "auc": float(roc_auc_score(y, s)),
        "accuracy": float(((s > 0) == y).mean()),
        "all_original": float(1 - y.mean()),
        "tokens": int(len(y)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--data", required=True, help="the prepared dataset the run was trained on")
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--batches", type=int, default=8, help="held-out batches of 64 examples")
    args = parser.parse_args()
    r = probe(args.run, args.data, args.checkpoint, args.batches)
    print(
        f"{args.run} [{args.checkpoint}]: AUC {r['auc']:.3f}, accuracy {r['accuracy']:.4f} "
        f"(all-original {r['all_original']:.4f}) over {r['tokens']:,} held-out tokens"
    )


if __name__ == "__main__":
    main()
