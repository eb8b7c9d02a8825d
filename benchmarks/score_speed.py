"""Scoring speed: Electric's one-pass score against the masked-LM pseudo-log-likelihood, measured in the same run.

Both use `electra.score` (what `electra score` runs) on models of one shape with random weights: the PLL needs one
forward pass of a masked copy per token (126 copies of a 128-token sentence), Electric one pass per sentence. The
ratio is the time of the PLL over the time of Electric's score for the same N sentences of exactly `--seq-len`
tokens ([CLS] and [SEP] included). The two are interleaved (`interleaved`): on a shared machine the load changes
within a minute, and timing one method after the other would put the change on one of them only.

    python benchmarks/score_speed.py [--preset small] [--sentences 16] [--seq-len 128] [--batch-size 64]
                                     [--threads 2] [--rounds 1]
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


def interleaved(electric, pll, n: int, rounds: int) -> tuple[float, float, list[float], list[float]]:
    """Seconds of Electric's score of all `n` sentences and of their PLL, the PLL taken one sentence at a time with a
    full Electric pass before each and after the last, so a change of the machine's load falls on both. Electric:
    the mean of its passes; PLL: the sum over the sentences, mean over `rounds`."""
    electric_times, pll_times, e_out, p_out = [], [], [], []
    for _ in range(rounds):
        pll_total, p_out = 0.0, []
        for i in range(n + 1):
            start = time.perf_counter()
            e_out = electric()
            electric_times.append(time.perf_counter() - start)
            if i < n:
                start = time.perf_counter()
                p_out += pll(i)
                pll_total += time.perf_counter() - start
        pll_times.append(pll_total)
    return statistics.mean(electric_times), statistics.mean(pll_times), e_out, p_out


def main() -> None:
    from electra.score import electric_scores, pseudo_log_likelihoods

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--sentences", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="timed rounds (each: every sentence's PLL, N+1 Electric)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, disc, gen = build(args.preset, args.seq_len)
    batch = sentences(args.sentences, args.seq_len, cfg.vocab_size)
    electric_scores(disc, batch[:2], 0, args.batch_size)  # warm-up
    pseudo_log_likelihoods(gen, batch[:1], 103, 0, args.batch_size)
    electric_s, pll_s, electric, pll = interleaved(
        lambda: electric_scores(disc, batch, 0, args.batch_size),
        lambda i: pseudo_log_likelihoods(gen, batch[i : i + 1], 103, 0, args.batch_size),
        args.sentences,
        args.rounds,
    )
    tokens = args.sentences * (args.seq_len - 2)
    record = {
        "preset": args.preset,
        "sentences": args.sentences,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "threads": args.threads,
        "electric_s": round(electric_s, 4),
        "pll_s": round(pll_s, 4),
        "electric_sentences_per_s": round(args.sentences / electric_s, 2),
        "pll_sentences_per_s": round(args.sentences / pll_s, 3),
        "pll_forward_copies": tokens,
        "ms_per_sequence_electric": round(1000 * electric_s / args.sentences, 2),
        "ms_per_sequence_pll": round(1000 * pll_s / tokens, 2),
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
