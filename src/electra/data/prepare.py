"""`electra prepare`: any corpus -> tokenized ELECTRA examples on disk, streaming and multi-process, the output the
same for any number of workers (docs/data.md)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import shutil
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tokenizers import Tokenizer

from electra import __version__, io
from electra.data import store
from electra.data.builder import MIN_MAX_LENGTH, Example, ExampleBuilder, next_target_length, serialize
from electra.data.sources import ReadStats, Source, iter_documents, resolve_sources, source_fingerprint, total_bytes
from electra.errors import ElectraError
from electra.tokenizer import WordPiece, load_tokenizer

if TYPE_CHECKING:
    from tqdm import tqdm

CHUNK_CHARS = 1 << 20  # ~1 MB of text per chunk: ~250k tokens, large enough to amortise the batched tokenizer
MAX_LENGTH_LIMIT = (1 << 16) - 1  # segment-A lengths are stored as uint16
DEFAULT_MAX_HOLDOUT = 1000
PARTIAL_PREFIX = ".partial-"


# building one chunk (runs in a worker process, or in the main process with workers=1)


def chunk_seed(seed: int, chunk_index: int) -> int:
    digest = hashlib.sha256(f"electra-data/{seed}/{chunk_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def build_chunk(
    tokenizer: Tokenizer, docs: list[list[str]], chunk_index: int, seed: int, max_length: int, cls_id: int, sep_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokenize a chunk of documents and cut it into serialized examples: (tokens, lengths, segment_a)."""
    lines = [line for doc in docs for line in doc]
    ids = [e.ids for e in tokenizer.encode_batch(lines, add_special_tokens=False)]
    rng = random.Random(chunk_seed(seed, chunk_index))
    # chunk 0 starts at max_length like the official builder; later chunks draw the target the previous example
    # would have drawn, so the share of random-length examples stays 5 %
    builder = ExampleBuilder(max_length, rng, None if chunk_index == 0 else next_target_length(rng, max_length))
    tokens: list[int] = []
    lengths: list[int] = []
    segment_a: list[int] = []

    def emit(example: Example) -> None:
        serialized, a_len = serialize(example, cls_id, sep_id)
        tokens.extend(serialized)
        lengths.append(len(serialized))
        segment_a.append(a_len)

    k = 0
    for doc in docs:
        for _ in doc:
            if example := builder.add_line(ids[k]):
                emit(example)
            k += 1
        if example := builder.end_document():
            emit(example)
    return np.array(tokens, dtype=np.uint32), np.array(lengths, dtype=np.int64), np.array(segment_a, dtype=np.uint16)


_worker_tokenizer: Tokenizer | None = None  # one per worker process, set by the pool initializer


def _init_worker(tokenizer_json: str) -> None:
    global _worker_tokenizer
    _worker_tokenizer = Tokenizer.from_str(tokenizer_json)


def _build_chunk_in_worker(
    docs: list[list[str]], chunk_index: int, seed: int, max_length: int, cls_id: int, sep_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return build_chunk(_worker_tokenizer, docs, chunk_index, seed, max_length, cls_id, sep_id)


def chunk_documents(docs: Iterable[list[str]], chunk_chars: int) -> Iterator[list[list[str]]]:
    """Group documents into chunks of at least `chunk_chars` characters, closing at document boundaries only."""
    chunk: list[list[str]] = []
    size = 0
    for doc in docs:
        piece: list[str] = []
        piece_size = 0
        for line in doc:
            piece.append(line)
            piece_size += len(line)
            if piece_size >= chunk_chars:
                chunk.append(piece)
                yield chunk
                chunk, size, piece, piece_size = [], 0, [], 0
        if piece:
            chunk.append(piece)
            size += piece_size
            if size >= chunk_chars:
                yield chunk
                chunk, size = [], 0
    if chunk:
        yield chunk


# the output directory: cache check, refusal of foreign contents, atomic completion


def _cache_key(sources: list[Source], fingerprints: list[str], settings: dict[str, Any]) -> str:
    description = {
        "format_version": store.FORMAT_VERSION,
        "sources": [[s.kind, s.clean, fp] for s, fp in zip(sources, fingerprints, strict=True)],
        **settings,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:32]


def _ours(name: str) -> bool:
    return name in (store.META, store.TOKENIZER, io.LOCK_FILE, *store.DATA_FILES) or name.startswith(
        (PARTIAL_PREFIX, ".meta.json")
    )


def _check_out_dir(out_dir: Path) -> dict[str, Any] | None:
    """The metadata of a complete dataset in `out_dir` (None: none), removing leftovers of interrupted builds."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ElectraError(f"output {out_dir} exists and is not a directory")
    if not out_dir.is_dir():
        return None
    foreign = sorted(p.name for p in out_dir.iterdir() if not _ours(p.name))
    if foreign:
        listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ElectraError(f"output directory {out_dir} holds other files ({listed}); choose an empty or new directory")
    for p in out_dir.glob(PARTIAL_PREFIX + "*"):
        pid = p.name[len(PARTIAL_PREFIX) :].split("-")[0]
        if not (pid.isdigit() and io.pid_alive(int(pid)) and int(pid) != os.getpid()):
            shutil.rmtree(p, ignore_errors=True)
    if (out_dir / store.META).is_file():
        try:
            return store.load_dataset_meta(out_dir)
        except ElectraError:
            return {}  # unreadable or other version: stale, rebuild only with overwrite
    return None


def _differences(meta: dict[str, Any], new: dict[str, Any]) -> list[str]:
    names = [
        "sources",
        "tokenizer_fingerprint",
        "max_length",
        "seed",
        "clean",
        "text_field",
        "chunk_chars",
        "holdout_setting",
        "skip_bad_lines",
    ]
    diff = [n for n in names if meta.get(n) != new.get(n)]
    return diff or ["format"]


def _install(partial: Path, out_dir: Path, meta: dict[str, Any]) -> None:
    """Move a finished build into place: remove the old meta.json first, so that a crash in between leaves a
    directory no later run takes for complete; write the new meta.json last."""
    (out_dir / store.META).unlink(missing_ok=True)
    for name in store.DATA_FILES:
        os.replace(partial / name, out_dir / name)
    if (out_dir / store.TOKENIZER).exists():
        shutil.rmtree(out_dir / store.TOKENIZER)
    os.replace(partial / store.TOKENIZER, out_dir / store.TOKENIZER)
    io.write_json(out_dir / store.META, meta)


# the public entry point


def prepare_corpus(
    sources: list[str],
    tokenizer: WordPiece | str | os.PathLike,
    max_length: int,
    out_dir: str | os.PathLike,
    workers: int = 1,
    seed: int = 0,
    **options,
) -> Path:
    """The ELECTRA examples of `sources` in `out_dir`, built or reused (same inputs); returns `out_dir`."""
    return build_or_reuse(sources, tokenizer, max_length, out_dir, workers, seed, **options)[0]


def build_or_reuse(
    sources: list[str],
    tokenizer: WordPiece | str | os.PathLike,
    max_length: int,
    out_dir: str | os.PathLike,
    workers: int = 1,
    seed: int = 0,
    *,
    clean: bool = False,
    skip_bad_lines: bool = False,
    text_field: str = "text",
    holdout: int | None = None,
    overwrite: bool = False,
    chunk_chars: int = CHUNK_CHARS,
    progress: bool = False,
) -> tuple[Path, bool]:
    """`prepare_corpus`, also saying whether an existing dataset was reused."""
    if not isinstance(max_length, int) or not MIN_MAX_LENGTH <= max_length <= MAX_LENGTH_LIMIT:
        raise ElectraError(f"max length must be an integer in [{MIN_MAX_LENGTH}, {MAX_LENGTH_LIMIT}], got {max_length}")
    if workers < 1:
        raise ElectraError(f"workers must be at least 1, got {workers}")
    if holdout is not None and holdout < 0:
        raise ElectraError(f"holdout must be >= 0, got {holdout}")
    if not isinstance(tokenizer, WordPiece):
        tokenizer = load_tokenizer(tokenizer)
    srcs = resolve_sources(list(sources), clean=clean)
    out_dir = Path(out_dir)
    existing = _check_out_dir(out_dir)

    fingerprints = [source_fingerprint(s) for s in srcs]
    settings = {"tokenizer_fingerprint": tokenizer.fingerprint(), "max_length": max_length, "seed": seed}
    settings |= {"clean": clean, "text_field": text_field, "chunk_chars": chunk_chars, "holdout_setting": holdout}
    settings["skip_bad_lines"] = skip_bad_lines
    key = _cache_key(srcs, fingerprints, settings)
    described = [{"spec": s.spec, "kind": s.kind, "fingerprint": fp} for s, fp in zip(srcs, fingerprints, strict=True)]
    new_meta = {"sources": described, **settings}
    if existing is not None:
        if existing.get("key") == key:
            store.ExampleStore(out_dir)  # the files must still match the metadata
            return out_dir, True
        if not overwrite:
            differs = ", ".join(_differences(existing, new_meta))
            raise ElectraError(
                f"{out_dir} holds a dataset built from other inputs (differs in: {differs}); "
                "pass --force to replace it or choose another --out"
            )

    created = not out_dir.exists()
    lock = io.DirLock(out_dir, "dataset directory").acquire()  # one writer at a time
    partial = out_dir / f"{PARTIAL_PREFIX}{os.getpid()}-{time.time_ns()}"
    partial.mkdir()
    try:
        stats, writer, elapsed = _build(
            srcs, tokenizer, max_length, partial, workers, seed, skip_bad_lines, text_field, chunk_chars, progress
        )
        if writer.num_examples == 0:
            raise ElectraError(f"corpus {' '.join(sources)} contains no text: no examples were built")
        tokenizer.save(partial / store.TOKENIZER)
        n = writer.num_examples
        num_holdout = min(DEFAULT_MAX_HOLDOUT, n // 20) if holdout is None else min(holdout, n - 1)
        meta = {
            "format": store.FORMAT,
            "format_version": store.FORMAT_VERSION,
            "key": key,
            "electra_version": __version__,
        }
        meta |= {"num_examples": n, "num_tokens": writer.num_tokens, "num_documents": stats.documents}
        meta |= {"num_holdout": num_holdout, "skipped_lines": stats.skipped_lines, "long_lines": stats.long_lines}
        meta |= {"token_dtype": writer.dtype.name, "vocab_size": tokenizer.vocab_size, "lowercase": tokenizer.lowercase}
        meta["padding_fraction"] = 1.0 - writer.num_tokens / (n * max_length)
        meta["length_histogram"] = {str(i): int(c) for i, c in enumerate(writer.length_counts) if c}
        meta |= {"build_seconds": round(elapsed, 2), "workers": workers, **new_meta}
        _install(partial, out_dir, meta)
    except (OSError, ElectraError) as err:
        io.user_path(err, partial, out_dir)  # the user's path, not the temporary one
        raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        lock.release()
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
    return out_dir, False


def _build(
    srcs: list[Source],
    tokenizer: WordPiece,
    max_length: int,
    partial: Path,
    workers: int,
    seed: int,
    skip_bad_lines: bool,
    text_field: str,
    chunk_chars: int,
    progress: bool,
) -> tuple[ReadStats, store.ExampleWriter, float]:
    stats = ReadStats()
    writer = store.ExampleWriter(partial, store.token_dtype(tokenizer.vocab_size), max_length)
    docs = iter_documents(srcs, stats, skip_bad_lines=skip_bad_lines, text_field=text_field)
    chunks = chunk_documents(docs, chunk_chars)
    args = (seed, max_length, tokenizer.cls_id, tokenizer.sep_id)
    bar = _progress_bar(total_bytes(srcs)) if progress else None
    start = time.perf_counter()

    def write(result: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        writer.write(*result)
        if bar is not None:
            bar.update(stats.bytes_read - bar.n)
            rate = writer.num_tokens / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix_str(f"{stats.documents:,} docs, {writer.num_examples:,} examples, {rate:,.0f} tok/s")

    try:
        if workers == 1:
            for i, chunk in enumerate(chunks):
                write(build_chunk(tokenizer.backend, chunk, i, *args))
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_worker, initargs=(tokenizer.backend.to_str(),)
            ) as pool:
                in_flight: deque = deque()
                try:
                    for i, chunk in enumerate(chunks):
                        in_flight.append(pool.submit(_build_chunk_in_worker, chunk, i, *args))
                        if len(in_flight) >= 2 * workers:
                            write(in_flight.popleft().result())
                    while in_flight:
                        write(in_flight.popleft().result())
                except BaseException:
                    for future in in_flight:
                        future.cancel()
                    raise
    finally:
        writer.close()
        if bar is not None:
            bar.close()
    return stats, writer, time.perf_counter() - start


def _progress_bar(total: int | None) -> tqdm:
    from tqdm import tqdm

    return tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="prepare", file=sys.stderr, dynamic_ncols=True
    )
