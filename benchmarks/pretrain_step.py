"""One full ELECTRA-Small pretraining step (forward, backward, clip, optimizer) at fp32: ours against the
construction richarddwang/electra_pytorch uses, measured in the same run.

That construction: transformers `ElectraForMaskedLM` (generator, 1/4 width) + `ElectraForPreTraining` with the
embeddings shared and the generator's output layer tied, Bernoulli masking, generator logits over *all*
positions, Gumbel sampling of the masked ones, the usual Adam. Each variant runs in its own subprocess so peak
memory (max RSS) is measured separately.

    python benchmarks/pretrain_step.py [--batch 32] [--seq-len 128] [--steps 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

V, L_DEFAULT = 30522, 128


def make_batch(B: int, L: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, V, (B, L), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    return ids, torch.ones_like(ids), torch.zeros_like(ids)


def ours(B: int, L: int):
    from electra import init
    from electra.config import preset
    from electra.objective import SpecialIds
    from electra.optim import AdamW, param_groups

    model = init.build(preset("small", max_length=L), SpecialIds()).train()
    opt = AdamW(param_groups(model.named_parameters(), 0.01), lr=5e-4)
    rng = torch.Generator().manual_seed(0)

    def step(ids, mask, types):
        out = model(ids, mask, types, rng)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss.item()

    return step


def reference(B: int, L: int):
    import transformers

    def cfg(hidden, heads, ffn):
        return transformers.ElectraConfig(
            vocab_size=V,
            embedding_size=128,
            hidden_size=hidden,
            num_hidden_layers=12,
            num_attention_heads=heads,
            intermediate_size=ffn,
        )

    gen = transformers.ElectraForMaskedLM(cfg(64, 1, 256))
    disc = transformers.ElectraForPreTraining(cfg(256, 4, 1024))
    disc.electra.embeddings = gen.electra.embeddings
    gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight
    params = list({id(p): p for m in (gen, disc) for p in m.parameters()}.values())
    opt = torch.optim.AdamW(params, lr=5e-4, eps=1e-6, weight_decay=0.01)
    gumbel = torch.distributions.Gumbel(0.0, 1.0)
    special = torch.tensor([0, 100, 101, 102, 103])

    def step(ids, mask, types):
        gen.train(), disc.train()
        candidates = ~torch.isin(ids, special)
        selected = candidates & (torch.rand(ids.shape) < 0.15)
        masked_ids = torch.where(selected & (torch.rand(ids.shape) < 0.85), 103, ids)
        logits = gen(input_ids=masked_ids, attention_mask=mask, token_type_ids=types).logits  # (B, L, V)
        mlm_logits = logits[selected]
        gen_loss = torch.nn.functional.cross_entropy(mlm_logits, ids[selected])
        with torch.no_grad():
            sampled = (mlm_logits.float() + gumbel.sample(mlm_logits.shape)).argmax(-1)
            fake = ids.clone()
            fake[selected] = sampled
            labels = (fake != ids).float()
        disc_logits = disc(input_ids=fake, attention_mask=mask, token_type_ids=types).logits
        disc_loss = torch.nn.functional.binary_cross_entropy_with_logits(disc_logits[mask.bool()], labels[mask.bool()])
        loss = gen_loss + 50 * disc_loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def measure(variant: str, B: int, L: int, steps: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = {"ours": ours, "reference": reference}[variant](B, L)
    batch = make_batch(B, L)
    for _ in range(2):  # warm-up
        step(*batch)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step(*batch)
        times.append(time.perf_counter() - t0)
    assert loss == loss, "NaN loss"
    median = statistics.median(times)
    return {
        "variant": variant,
        "step_s": median,
        "tokens_per_s": B * L / median,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=L_DEFAULT)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.batch, args.seq_len, args.steps, args.threads)))
        return
    results = {}
    for variant in ("reference", "ours"):
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--batch",
            str(args.batch),
            "--seq-len",
            str(args.seq_len),
            "--steps",
            str(args.steps),
            "--threads",
            str(args.threads),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[variant] = json.loads(out.strip().splitlines()[-1])
    r, o = results["reference"], results["ours"]
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads available, "
        f"torch {torch.__version__}"
    )
    print(
        f"ELECTRA-Small step, batch {args.batch} x {args.seq_len}, fp32, {args.threads} threads, median of "
        f"{args.steps} steps"
    )
    print("| variant | step (s) | tokens/s | peak RSS (MB) |\n|---|---|---|---|")
    for v in (r, o):
        print(f"| {v['variant']} | {v['step_s']:.3f} | {v['tokens_per_s']:.0f} | {v['peak_rss_mb']:.0f} |")
    print(
        f"speed-up: {o['tokens_per_s'] / r['tokens_per_s']:.2f}x, peak memory ratio: "
        f"{o['peak_rss_mb'] / r['peak_rss_mb']:.2f}"
    )


if __name__ == "__main__":
    main()
