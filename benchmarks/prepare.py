"""Raw text -> stored ELECTRA examples: tokens/s of `electra prepare` against richarddwang/electra_pytorch's approach.

Baseline ("richarddwang approach", as in its `ELECTRADataProcessor`): a transformers fast tokenizer loaded from the
same vocab, `tokenize` + `convert_tokens_to_ids` per line, and a pure-Python example builder fed line by line
(our `ExampleBuilder`, the same algorithm), examples kept as Python lists. Ours: `prepare_corpus` (batched Rust
tokenizer per chunk, streaming, N worker processes) up to files on disk. Every measurement runs in a fresh
subprocess, which also reports its peak RSS (itself + its worker processes). The speed unit is the corpus' WordPiece
tokens per second of wall time, so the ratio is a ratio of times.

    PYTHONPATH=src python benchmarks/prepare.py [--corpus FILE] [--vocab FILE] [--workers 1 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("ELECTRA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024  # ru_maxrss is in KiB on Linux; children: the largest worker


def run_baseline(corpus: list[str], vocab: str, max_length: int) -> dict:
    import random

    from transformers import ElectraTokenizerFast

    from electra.data.builder import ExampleBuilder, serialize

    with tempfile.TemporaryDirectory() as d:
        shutil.copy(vocab, Path(d) / "vocab.txt")
        hf = ElectraTokenizerFast.from_pretrained(d)
    start = time.perf_counter()
    builder = ExampleBuilder(max_length, random.Random(11081))
    input_ids, sent_a = [], []
    tokens = 0

    def keep(example):
        if example:
            ids, a_len = serialize(example, hf.cls_token_id, hf.sep_token_id)
            input_ids.append(ids)
            sent_a.append(a_len)

    for path in corpus:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    keep(builder.end_document())
                    continue
                ids = hf.convert_tokens_to_ids(hf.tokenize(line))
                tokens += len(ids)
                keep(builder.add_line(ids))
        keep(builder.end_document())
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "corpus_tokens": tokens, "examples": len(input_ids)}


def run_ours(corpus: list[str], vocab: str, max_length: int, workers: int) -> dict:
    from electra.data import load_dataset_meta, prepare_corpus
    from electra.tokenizer import load_tokenizer

    tok = load_tokenizer(vocab)
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        out = prepare_corpus(corpus, tok, max_length, Path(d) / "ds", workers=workers)
        seconds = time.perf_counter() - start
        meta = load_dataset_meta(out)
    return {
        "seconds": seconds,
        "examples": meta["num_examples"],
        "stored_tokens": meta["num_tokens"],
        "length_histogram": meta["length_histogram"],
        "padding_fraction": meta["padding_fraction"],
    }


def run_tokenizer_only(corpus: list[str], vocab: str, batched: bool) -> dict:
    from electra.tokenizer import load_tokenizer

    lines = [s for path in corpus for line in Path(path).read_text(encoding="utf-8").split("\n") if (s := line.strip())]
    tok = load_tokenizer(vocab)
    start = time.perf_counter()
    if batched:
        n = sum(len(ids) for i in range(0, len(lines), 20000) for ids in tok.encode_batch(lines[i : i + 20000]))
    else:
        from transformers import ElectraTokenizerFast

        with tempfile.TemporaryDirectory() as d:
            shutil.copy(vocab, Path(d) / "vocab.txt")
            hf = ElectraTokenizerFast.from_pretrained(d)
        start = time.perf_counter()
        n = sum(len(hf.convert_tokens_to_ids(hf.tokenize(line))) for line in lines)
    return {"seconds": time.perf_counter() - start, "corpus_tokens": n}


def child(args) -> None:
    if args.one == "baseline":
        result = run_baseline(args.corpus, args.vocab, args.max_length)
    elif args.one == "ours":
        result = run_ours(args.corpus, args.vocab, args.max_length, args.workers[0])
    else:
        result = run_tokenizer_only(args.corpus, args.vocab, batched=args.one == "tok-batched")
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure(kind: str, args, workers: int = 1, corpus: list[str] | None = None) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        kind,
        "--workers",
        str(workers),
        "--vocab",
        args.vocab,
        "--max-length",
        str(args.max_length),
        "--corpus",
        *(corpus or args.corpus),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
    return json.loads(out.stdout.strip().splitlines()[-1])


def best(kind: str, args, repeat: int, **kw) -> dict:
    runs = [measure(kind, args, **kw) for _ in range(repeat)]
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", nargs="+", default=[str(SHARED / "corpus" / "prose.txt")])
    parser.add_argument("--vocab", default=str(SHARED / "vocab" / "bert-base-uncased-vocab.txt"))
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=2, help="runs per configuration; the fastest is reported")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        child(args)
        return
    for path in (*args.corpus, args.vocab):
        if not Path(path).is_file():
            sys.exit(f"{path} not found (set ELECTRA_SHARED_DATA or pass --corpus/--vocab)")

    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    base = best("baseline", args, args.repeat)
    tokens = base["corpus_tokens"]
    rate = lambda r: tokens / r["seconds"]
    rows = [("richarddwang approach (per-line tokenize + Python builder)", base)]
    ours = {}
    for w in args.workers:
        ours[w] = best("ours", args, args.repeat, workers=w)
        rows.append((f"electra prepare, {w} worker(s)", ours[w]))
    tok_line = best("tok-line", args, 1)
    tok_batch = best("tok-batched", args, 1)
    rows += [
        ("tokenizer only: per-line tokenize + convert_tokens_to_ids", tok_line),
        ("tokenizer only: batched Rust encode_batch", tok_batch),
    ]
    print(f"\ncorpus {' '.join(args.corpus)}: {tokens:,} WordPiece tokens, max length {args.max_length}\n")
    print("| pipeline | seconds | tokens/s | vs baseline | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['seconds']:.1f} | {rate(r):,.0f} | {base['seconds'] / r['seconds']:.2f}x | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    # streaming: the same corpus three times over must not raise the peak memory
    w = max(args.workers)
    triple = best("ours", args, 1, workers=w, corpus=args.corpus * 3)
    print(
        f"\nstreaming: {w} worker(s), corpus x1 peak RSS {ours[w]['peak_rss_mb']:.0f} MB, "
        f"corpus x3 peak RSS {triple['peak_rss_mb']:.0f} MB ({triple['examples']:,} examples)"
    )
    first = ours[args.workers[0]]
    print(
        f"\nexamples: ours {first['examples']:,} (stored tokens {first['stored_tokens']:,}, padding "
        f"{100 * first['padding_fraction']:.1f} %); baseline {base['examples']:,}"
    )
    hist = {int(k): v for k, v in first["length_histogram"].items()}
    edges = [(5, 32), (33, 64), (65, 96), (97, 120), (121, 127), (128, 128)]
    print("\n| length (tokens incl. [CLS]/[SEP]) | examples | share |")
    print("|---|---|---|")
    for lo, hi in edges:
        count = sum(v for k, v in hist.items() if lo <= k <= hi)
        print(f"| {lo}-{hi} | {count:,} | {100 * count / first['examples']:.1f} % |")


if __name__ == "__main__":
    main()
