"""`electra prepare` and `electra vocab`: their options and the calls into `electra.data`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus",
        nargs="+",
        required=True,
        metavar="SRC",
        help="text/.jsonl/.gz files or directories, `builtin` (small, offline, smoke runs only), "
        "hf:<dataset_id>[:<config>][:<split>], or openwebtext / wikipedia / bookcorpus",
    )
    tok = parser.add_mutually_exclusive_group(required=True)
    tok.add_argument("--vocab", metavar="FILE", help="a WordPiece vocab.txt (or a tokenizer directory)")
    tok.add_argument("--tokenizer", metavar="ID", help="a hub id such as google/electra-small-discriminator")
    parser.add_argument("--cased", action="store_true", help="keep case (with --vocab; default lowercases)")
    parser.add_argument("--max-length", type=int, default=128, help="example length L (default 128)")
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset directory to create")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (output is the same for any N)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the example builder (default 0)")
    clean = "drop lines under 80 characters and delete '()' (richarddwang's Wikipedia cleaning)"
    parser.add_argument("--clean-lines", action="store_true", help=clean)
    skip = "skip (and count) lines that are not valid UTF-8 instead of stopping"
    parser.add_argument("--skip-bad-lines", action="store_true", help=skip)
    parser.add_argument("--text-field", default="text", help="text field of .jsonl rows / datasets (default text)")
    parser.add_argument(
        "--holdout", type=int, default=None, help="examples set aside for evaluation (default min(1000, 5%%))"
    )
    parser.add_argument(
        "--force", dest="overwrite", action="store_true", help="replace a dataset built from other inputs"
    )
    parser.add_argument("--overwrite", dest="overwrite", action="store_true", help=argparse.SUPPRESS)  # older name
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_prepare(args: argparse.Namespace) -> int:
    from electra.data import store
    from electra.data.prepare import build_or_reuse
    from electra.tokenizer import load_tokenizer

    if args.vocab:
        tokenizer = load_tokenizer(args.vocab, lowercase=not args.cased if Path(args.vocab).is_file() else None)
    else:
        tokenizer = load_tokenizer(args.tokenizer)
    if "builtin" in args.corpus:
        print("note: `builtin` is a small corpus of Python docstrings, for smoke runs only", file=sys.stderr)
    options = {k: getattr(args, k) for k in ("workers", "seed", "skip_bad_lines", "text_field", "holdout", "overwrite")}
    options.update(clean=args.clean_lines, progress=not args.quiet)
    out, reused = build_or_reuse(args.corpus, tokenizer, args.max_length, args.out, **options)
    meta = store.load_dataset_meta(out)
    print(summary(meta, out, reused))
    return 0


def add_vocab_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", nargs="+", required=True, metavar="SRC", help="corpus sources, as for prepare")
    parser.add_argument("--size", type=int, default=30522, help="vocabulary size (default 30522, as BERT)")
    parser.add_argument("--cased", action="store_true", help="keep case and accents (default: lowercase + strip)")
    parser.add_argument("--min-frequency", type=int, default=2, help="least count of a merged piece (default 2)")
    parser.add_argument("--skip-bad-lines", action="store_true", help="skip lines that are not valid UTF-8")
    parser.add_argument("--text-field", default="text", help="text field of .jsonl rows / datasets")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for vocab.txt + tokenizer.json")
    parser.add_argument("--force", dest="overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--overwrite", dest="overwrite", action="store_true", help=argparse.SUPPRESS)  # older name


def run_vocab(args: argparse.Namespace) -> int:
    from electra import io
    from electra.data.vocab import train_vocab

    io.refuse_inputs_inside(args.out, {"--corpus": args.corpus}, "--force" if args.overwrite else "writing")
    tokenizer = train_vocab(
        args.corpus, args.size, args.cased, args.min_frequency, args.skip_bad_lines, args.text_field
    )
    io.write_dir(Path(args.out), tokenizer.save, force=args.overwrite)
    case = "cased" if args.cased else "uncased"
    print(f"wrote {args.out}: {tokenizer.vocab_size} tokens ({case}), fingerprint {tokenizer.fingerprint()}")
    return 0


def summary(meta: dict[str, Any], out: Path, reused: bool = False) -> str:
    from electra.data.sources import LONG_LINE_CHARS, PIECE_CHARS

    lines = [
        f"{'reused' if reused else 'wrote'} {out}",
        f"  documents {meta['num_documents']:,}  examples {meta['num_examples']:,} "
        f"(held out {meta['num_holdout']:,})  tokens {meta['num_tokens']:,}",
        f"  max length {meta['max_length']}  padding {100 * meta['padding_fraction']:.1f} %  "
        f"tokenizer {meta['tokenizer_fingerprint']}",
    ]
    if meta["skipped_lines"]:
        lines.append(f"  skipped {meta['skipped_lines']:,} lines that were not valid UTF-8")
    if meta.get("long_lines"):
        lines.append(
            f"  cut {meta['long_lines']:,} line(s) of over {LONG_LINE_CHARS:,} characters (text without line breaks) "
            f"into lines of at most {PIECE_CHARS} characters"
        )
    if not reused:
        lines.append(
            f"  built in {meta['build_seconds']:.1f} s with {meta['workers']} worker(s) "
            f"({meta['num_tokens'] / max(meta['build_seconds'], 1e-9):,.0f} stored tokens/s)"
        )
    return "\n".join(lines)
