"""Scoring speed: Electric's one-pass score against the masked-LM pseudo-log-likelihood, measured in the same run.

Both use `electra.score` (what `electra score` runs) on models of one shape with random weights: the PLL needs one
forward pass of a masked copy per token (126 copies of a 128-token sentence), Electric one pass per sentence. The
ratio is the time of the PLL over the time of Electric's score for the same N sentences of exactly `--seq-len`
tokens ([CLS] and [SEP] included).

    python benchmarks/score_speed.py [--preset small] [--sentences 16] [--seq-len 128] [--batch-size 64]
                                     [--threads 2] [--repeat 3] [--pll-repeat 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch


def build(preset_name: str, seq_len: int):
    from electra.config import preset
    from electra.model import Discriminator, Generator, init_weights

    cfg = preset(preset_name, max_length=seq_len).model
    torch.manual_seed(0)
    disc, gen = Discriminator(cfg), Generator(cfg)  # the same shape: the full-size masked LM and the discriminator
    for module in (disc, gen):
        init_weights(module, cfg.initializer_range)
    return cfg, disc.eval(), gen.eval()


def sentences(n: int, seq_len: int, vocab_size: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    body = torch.randint(1000, vocab_size, (n, seq_len - 2), generator=g).tolist()
    return [[101, *row, 102] for row in body]  # [CLS] ... [SEP] of the BERT vocabulary


def timed(fn, repeat: int) -> tuple[float, list[float]]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    from electra.score import electric_scores, pseudo_log_likelihoods

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--sentences", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of Electric's score (median)")
    ap.add_argument("--pll-repeat", type=int, default=1, help="timed runs of the PLL (median)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, disc, gen = build(args.preset, args.seq_len)
    batch = sentences(args.sentences, args.seq_len, cfg.vocab_size)
    electric_scores(disc, batch[:2], 0, args.batch_size)  # warm-up
    pseudo_log_likelihoods(gen, batch[:1], 103, 0, args.batch_size)
    electric_s, electric = timed(lambda: electric_scores(disc, batch, 0, args.batch_size), args.repeat)
    pll_s, pll = timed(lambda: pseudo_log_likelihoods(gen, batch, 103, 0, args.batch_size), args.pll_repeat)
    tokens = args.sentences * (args.seq_len - 2)
    record = {
        "preset": args.preset,
        "sentences": args.sentences,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "electric_s": round(electric_s, 4),
        "pll_s": round(pll_s, 4),
        "electric_sentences_per_s": round(args.sentences / electric_s, 2),
        "pll_sentences_per_s": round(args.sentences / pll_s, 3),
        "pll_forward_copies": tokens,
        "ratio": round(pll_s / electric_s, 1),
        "finite": all(map(torch.isfinite, map(torch.tensor, electric + pll))),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
    }
    print(json.dumps(record))
    print(
        f"Electric {electric_s:.3f} s vs PLL {pll_s:.2f} s for {args.sentences} sentences of {args.seq_len} tokens: "
        f"{pll_s / electric_s:.1f}x"
    )


if __name__ == "__main__":
    main()
