"""Corpus readers: every source (docs/data.md) becomes a stream of documents, each a list of non-empty, stripped
lines."""

from __future__ import annotations

import ast
import gzip
import hashlib
import inspect
import json
import os
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from electra.errors import ElectraError

TEXT_SUFFIXES = (".txt", ".text")
JSONL_SUFFIXES = (".jsonl", ".json")
BUILTIN_VERSION = 2  # 2: the linear probe's packages (`PROBE_PACKAGES`) are left out
BUILTIN_TOPICS: dict[str, tuple[str, ...]] = {  # the built-in probe set's labels -> stdlib packages
    # left out of the built-in corpus: the probe's labelled texts are never pretraining text
    "asyncio": ("asyncio",),
    "email": ("email",),
    "logging": ("logging",),
    "unittest": ("unittest",),
    "xml": ("xml",),
    "web": ("http", "urllib"),
}
PROBE_PACKAGES = frozenset(p for packages in BUILTIN_TOPICS.values() for p in packages)
BUILTIN_MAX_CHARS = 2_000_000
_BUILTIN_SKIP = set(
    "test tests idlelib site-packages dist-packages lib2to3 turtledemo __pycache__ ensurepip pydoc_data venv".split()
)

# name -> (hub spec, clean lines like richarddwang/electra_pytorch does for Wikipedia)
ALIASES: dict[str, tuple[str, bool]] = {
    "openwebtext": ("hf:Skylion007/openwebtext", False),
    "wikipedia": ("hf:wikimedia/wikipedia:20231101.en", True),
    "bookcorpus": ("hf:bookcorpus/bookcorpus", False),
}


@dataclass(frozen=True)
class Source:
    """One corpus: `kind` is "text", "jsonl", "builtin" or "hf"."""

    spec: str
    kind: str
    path: Path | None = None
    gzipped: bool = False
    hf_id: str = ""
    hf_config: str | None = None
    hf_split: str = "train"
    clean: bool = False


@dataclass
class ReadStats:
    """Counters the readers update while streaming (read by the progress bar and the summary)."""

    bytes_read: int = 0
    skipped_lines: int = 0
    documents: int = 0
    long_lines: int = 0  # lines over LONG_LINE_CHARS, cut into pieces (text without line breaks)
    files: list[str] = field(default_factory=list)


def resolve_sources(specs: list[str], clean: bool = False) -> list[Source]:
    """Parse source strings; paths must exist, directories expand to their files in sorted order."""
    if not specs:
        raise ElectraError("no corpus given: pass at least one source (a path, `builtin` or `hf:<dataset_id>`)")
    sources: list[Source] = []
    for spec in specs:
        if spec in ALIASES:
            hub, alias_clean = ALIASES[spec]
            sources.append(_hf_source(hub, clean or alias_clean, spec))
        elif spec == "builtin":
            sources.append(Source(spec, "builtin", clean=clean))
        elif spec.startswith("hf:"):
            sources.append(_hf_source(spec, clean, spec))
        else:
            sources.extend(_path_sources(spec, clean))
    return sources


def _hf_source(spec: str, clean: bool, name: str) -> Source:
    parts = spec[3:].split(":")
    if not parts[0] or len(parts) > 3:
        raise ElectraError(f"bad datasets source {name!r}: expected hf:<dataset_id>[:<config>][:<split>]")
    config = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 and parts[2] else "train"
    return Source(name, "hf", hf_id=parts[0], hf_config=config, hf_split=split, clean=clean)


def _file_kind(path: Path) -> tuple[str, bool] | None:
    name = path.name.lower()
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[:-3]
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl", gzipped
    if name.endswith(TEXT_SUFFIXES) or "." not in name:
        return "text", gzipped
    return None


def _path_sources(spec: str, clean: bool) -> list[Source]:
    path = Path(spec).expanduser()
    if not path.exists():
        raise ElectraError(f"corpus path {spec} does not exist")
    if path.is_file():
        kind, gzipped = _file_kind(path) or ("text", False)
        return [Source(spec, kind, path=path, gzipped=gzipped, clean=clean)]
    found = []
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).parts
        if p.is_file() and not any(part.startswith(".") for part in rel) and (kind := _file_kind(p)):
            found.append(Source(str(p), kind[0], path=p, gzipped=kind[1], clean=clean))
    if not found:
        raise ElectraError(f"corpus directory {spec} holds no .txt, .jsonl or .gz files")
    return found


def total_bytes(sources: list[Source]) -> int | None:
    """Bytes the file sources will read (compressed size for .gz); None when a source's size is unknown."""
    total = 0
    for s in sources:
        if s.path is None:
            return None
        total += s.path.stat().st_size
    return total


def source_fingerprint(source: Source) -> str:
    """What identifies a source's content: a hash of a file's bytes (of the stdlib files for `builtin`); hub
    datasets by id, config and split only (`--force` rebuilds after they changed)."""
    if source.kind == "hf":
        return f"hf:{source.hf_id}:{source.hf_config}:{source.hf_split}"
    if source.kind == "builtin":
        h = hashlib.blake2b(f"{BUILTIN_VERSION} {sys.version}".encode(), digest_size=16)
        for p in _builtin_files():
            h.update(f"{p.name}:{p.stat().st_size};".encode())
        return "builtin:" + h.hexdigest()
    h = hashlib.blake2b(digest_size=16)
    with open(source.path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def clean_line(line: str) -> str | None:
    """richarddwang/electra_pytorch's Wikipedia cleaning: drop lines under 80 characters, delete "()"."""
    if len(line) < 80:
        return None
    return line.strip().replace("\n", " ").replace("()", "")


def iter_documents(
    sources: list[Source], stats: ReadStats, skip_bad_lines: bool = False, text_field: str = "text"
) -> Iterator[list[str]]:
    """Every document of every source, in order; empty documents are left out."""
    for source in sources:
        if source.kind == "text":
            docs = _text_documents(source, stats, skip_bad_lines)
        elif source.kind == "jsonl":
            docs = _jsonl_documents(source, stats, skip_bad_lines, text_field)
        elif source.kind == "builtin":
            docs = builtin_documents()
        else:
            docs = _hf_documents(source, text_field)
        for doc in docs:
            if source.clean:
                doc = [c for line in doc if (c := clean_line(line))]
            if any(len(line) > LONG_LINE_CHARS for line in doc):
                doc = cut_long_lines(doc, stats)
            if doc:
                stats.documents += 1
                yield doc


LONG_LINE_CHARS = 1_000_000  # no paragraph is this long: a file (or field) without line breaks
PIECE_CHARS = 500  # such a line becomes lines of at most this many characters (about 100 tokens of English)


def cut_long_lines(doc: list[str], stats: ReadStats) -> list[str]:
    """A line of over LONG_LINE_CHARS characters cut into lines of at most PIECE_CHARS (at the last space before the
    limit where there is one), counted in `stats.long_lines`; shorter lines are left as they are."""
    out: list[str] = []
    for line in doc:
        if len(line) <= LONG_LINE_CHARS:
            out.append(line)
            continue
        stats.long_lines += 1
        start = 0
        while start < len(line):
            end = min(start + PIECE_CHARS, len(line))
            if end < len(line):
                space = line.rfind(" ", start + 1, end + 1)
                end = space if space > start else end
            piece = line[start:end].strip()
            if piece:
                out.append(piece)
            start = end
    return out


def _raw_lines(source: Source, stats: ReadStats, skip_bad_lines: bool) -> Iterator[str]:
    """Decoded lines of a (possibly gzipped) file; a bad UTF-8 sequence names the file and its byte offset."""
    opener = gzip.open if source.gzipped else open
    where = " of the decompressed stream" if source.gzipped else ""
    offset = 0
    stats.files.append(str(source.path))
    try:
        with opener(source.path, "rb") as f:
            for raw in f:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    if not skip_bad_lines:
                        raise ElectraError(
                            f"{source.path}: invalid UTF-8 at byte offset {offset + err.start}{where} "
                            f"(pass --skip-bad-lines to skip and count such lines)"
                        ) from None
                    stats.skipped_lines += 1  # skipped, not an empty line: it does not end a document
                    offset += len(raw)
                    continue
                if offset == 0 and line.startswith("\ufeff"):
                    line = line[1:]
                offset += len(raw)
                if not source.gzipped:
                    stats.bytes_read += len(raw)
                yield line
    except (OSError, EOFError) as err:  # unreadable file, truncated gzip
        raise ElectraError(f"cannot read {source.path}: {err}") from None
    if source.gzipped:
        stats.bytes_read += source.path.stat().st_size


def _text_documents(source: Source, stats: ReadStats, skip_bad_lines: bool) -> Iterator[list[str]]:
    doc: list[str] = []
    for line in _raw_lines(source, stats, skip_bad_lines):
        line = line.strip()
        if line:
            doc.append(line)
        elif doc:
            yield doc
            doc = []
    if doc:
        yield doc


def split_document(text: str) -> list[str]:
    """A row of text as lines: split on newlines, strip, drop whitespace-only lines."""
    return [s for line in text.split("\n") if (s := line.strip())]


def _jsonl_documents(source: Source, stats: ReadStats, skip_bad_lines: bool, text_field: str) -> Iterator[list[str]]:
    for number, line in enumerate(_raw_lines(source, stats, skip_bad_lines), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ElectraError(f"{source.path}: line {number} is not valid JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
            raise ElectraError(f"{source.path}: line {number} has no string field {text_field!r}")
        yield split_document(row[text_field])


def _hf_documents(source: Source, text_field: str) -> Iterator[list[str]]:
    try:
        import datasets

        local = Path(source.hf_id).is_dir()
        if local and (Path(source.hf_id) / "dataset_info.json").is_file():
            dataset = datasets.load_from_disk(source.hf_id)
            if isinstance(dataset, datasets.DatasetDict):
                dataset = dataset[source.hf_split]
        else:
            if not local:
                from electra import hub

                hub.require(source.hf_id, "dataset")
            dataset = datasets.load_dataset(source.hf_id, source.hf_config, split=source.hf_split, streaming=True)
    except Exception as err:  # unknown id, no network, bad config ...
        raise ElectraError(f"could not load dataset {source.spec!r}: {err}") from None
    for row in dataset:
        text = row.get(text_field)
        if not isinstance(text, str):
            raise ElectraError(f"dataset {source.spec!r} has no text column {text_field!r} (pass --text-field)")
        yield split_document(text)


def _builtin_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = _BUILTIN_SKIP | PROBE_PACKAGES
    files = [p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts)]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def builtin_documents(max_chars: int = BUILTIN_MAX_CHARS) -> Iterator[list[str]]:
    """A small English corpus with no download, for smoke runs only: the docstrings of the Python standard library,
    one document per module, one line per prose paragraph; deterministic for a given Python installation."""
    files = _builtin_files()
    if not files:
        raise ElectraError(f"the built-in corpus needs the standard library sources, none found under {sys.prefix}")
    total = 0
    for path in files:
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, OSError):
            continue
        lines = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    lines.extend(paragraphs(inspect.cleandoc(doc)))
        if lines:
            yield lines
            total += sum(map(len, lines))
            if total >= max_chars:
                return


_PROSE = re.compile(r"[A-Za-z]{2,}")


def paragraphs(doc: str) -> list[str]:
    out = []
    for para in re.split(r"\n\s*\n", doc):
        text = " ".join(para.split())
        if text and not text.startswith((">>>", "...", "$", "#")) and len(_PROSE.findall(text)) >= 3:
            out.append(text)
    return out


def describe(source: Source) -> str:
    return source.spec if source.kind != "text" or source.path is None else os.fspath(source.path)
