"""Finetuning throughput: ours vs the transformers class with the same settings, in the same run.

`--task classification` (default): our SequenceClassifier vs transformers.ElectraForSequenceClassification.
`--task qa`: our QuestionAnswerer, with transformers' head and with the official ELECTRA head (answerable classifier,
end logits conditioned on the gold start), vs transformers.ElectraForQuestionAnswering; SQuAD's length 512 by default
(`--seq-len`), start/end cross-entropy (+ 0.5 x answerable BCE for the official head).

One step = forward + backward + global-norm clip 1.0 + our AdamW step (no bias correction, layer-wise LR groups),
batch 32, length 128 (no padding), ELECTRA-Small shape, fp32, dropout on, summed cross-entropy. Both models get the
same optimizer and the same inputs; steps alternate between the two models so background load affects both alike.
transformers' head is dense + GELU + dense (ElectraClassificationHead), ours one dense on [CLS] (faithfulness §6.2): a
difference of one 256x256 matmul on 32 vectors, negligible here.

    PYTHONPATH=src python benchmarks/finetune.py [--task classification|qa] [--steps 20] [--preset small] [--threads N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from electra.config import preset
from electra.finetune.encoder import build_model
from electra.finetune.layer_decay import layer_lr_multipliers
from electra.hf import hf_config
from electra.optim import AdamW, param_groups


def make_step(model, forward, num_layers: int, loss_fn=None, head_prefixes=("classifier.",)):
    names = [n for n, _ in model.named_parameters()]
    scale = layer_lr_multipliers(names, num_layers, 0.8, head_prefixes=head_prefixes)
    opt = AdamW(param_groups(model.named_parameters(), 0.0, scale.__getitem__), lr=3e-4)
    loss_fn = loss_fn or (lambda out, b: F.cross_entropy(out, b["labels"], reduction="sum"))

    def step(batch):
        loss = loss_fn(forward(batch), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, help="default 128 (classification), 512 (qa: SQuAD's)")
    parser.add_argument("--task", choices=("classification", "qa"), default="classification")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    args.seq_len = args.seq_len or (512 if args.task == "qa" else 128)
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    cfg = preset(args.preset).model
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    batch = dict(
        input_ids=torch.randint(5, cfg.vocab_size, (args.batch, args.seq_len), generator=g),
        attention_mask=torch.ones(args.batch, args.seq_len, dtype=torch.long),
        token_type_ids=torch.zeros(args.batch, args.seq_len, dtype=torch.long),
        labels=torch.randint(0, 2, (args.batch,), generator=g),
        start_positions=torch.randint(0, args.seq_len, (args.batch,), generator=g),
        end_positions=torch.randint(0, args.seq_len, (args.batch,), generator=g),
        is_impossible=torch.randint(0, 2, (args.batch,), generator=g),
    )
    inputs = lambda b: (b["input_ids"], b["attention_mask"], b["token_type_ids"])  # noqa: E731
    hf_inputs = lambda b: dict(zip(("input_ids", "attention_mask", "token_type_ids"), inputs(b), strict=True))  # noqa: E731
    layers = cfg.num_hidden_layers
    if args.task == "classification":
        ours = build_model(None, cfg, 2).train()
        hf = transformers.ElectraForSequenceClassification(
            hf_config(cfg, num_labels=2, classifier_dropout=0.1, attn_implementation="sdpa")
        ).train()
        steps = {
            "ours": make_step(ours, lambda b: ours(*inputs(b)), layers),
            "transformers": make_step(hf, lambda b: hf(**hf_inputs(b)).logits, layers),
        }
    else:
        from electra.finetune.qa.model import build_qa_model

        hf = transformers.ElectraForQuestionAnswering(hf_config(cfg, num_labels=2, attn_implementation="sdpa")).train()

        def ours_step(head: str):
            model = build_qa_model(None, cfg, head).train()
            prefixes = model.head_prefixes
            forward = lambda b: model(*inputs(b), start_positions=b["start_positions"])  # noqa: E731
            loss = lambda out, b: model.loss(out, b["start_positions"], b["end_positions"], b["is_impossible"]).sum()  # noqa: E731
            return make_step(model, forward, layers, loss, prefixes)

        def hf_loss(out, b):
            start = F.cross_entropy(out.start_logits, b["start_positions"], reduction="none")
            end = F.cross_entropy(out.end_logits, b["end_positions"], reduction="none")
            return ((start + end) / 2).sum()

        steps = {
            "ours (transformers head)": ours_step("transformers"),
            "ours (official head)": ours_step("official"),
            "transformers": make_step(hf, lambda b: hf(**hf_inputs(b)), layers, hf_loss, ("qa_outputs.",)),
        }
    times: dict[str, list[float]] = {k: [] for k in steps}
    for i in range(args.warmup + args.steps):
        for name, step in steps.items():
            t = time.perf_counter()
            step(batch)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t)
    rate = {k: args.batch / statistics.median(v) for k, v in times.items()}
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )
    print(
        f"ELECTRA-{args.preset} {args.task} finetuning step, batch {args.batch}, length {args.seq_len}, fp32, "
        f"{args.steps} steps each (median)"
    )
    for k, r in rate.items():
        print(f"  {k:<26} {r:8.1f} examples/s   ratio to transformers {r / rate['transformers']:.2f}")


if __name__ == "__main__":
    main()
