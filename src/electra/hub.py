"""The Hugging Face hub: reached only for names that are not local paths, and given up on at once when it cannot
be reached, with one line that says so (instead of half a minute of retries and a library's traceback)."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from electra.errors import ElectraError


def offline() -> bool:
    """HF_HUB_OFFLINE=1 (or the older TRANSFORMERS_OFFLINE / HF_DATASETS_OFFLINE): only the local cache is read."""
    from huggingface_hub import constants

    flags = (
        os.environ.get(n, "").upper() in ("1", "ON", "YES", "TRUE")
        for n in ("TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    )
    return bool(constants.HF_HUB_OFFLINE) or any(flags)


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's endpoint accepts a connection within `timeout` seconds."""
    url = urlparse(endpoint())
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError:
        return False
    return True


def require(name: str, what: str) -> None:
    """Call before fetching `name` (a `what`: "model", "tokenizer", "dataset") from the hub: raises one line when
    the hub cannot be reached. In offline mode the libraries read their cache and name what is missing."""
    if offline() or reachable():
        return
    raise ElectraError(
        f"{what} {name!r} is not a local path and the hub ({urlparse(endpoint()).hostname}) cannot be reached; "
        "give a local path, or set HF_HUB_OFFLINE=1 to use what is already in the local cache"
    )


DEFAULT_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
DATASET_SYNTAX = "hf:NAME[:CONFIG][@SPLIT][#COLUMN]"


@dataclass(frozen=True)
class DatasetSource:
    """A `datasets` dataset named on the command line (`--train hf:conll2003@train#chunk_tags`)."""

    name: str
    config: str | None
    split: str
    column: str | None  # a column to read, where the dataset has several candidates (tagging: which tags)


def parse_dataset(source: str, role: str) -> DatasetSource:
    """`hf:NAME[:CONFIG][@SPLIT][#COLUMN]` → its parts; the split defaults to train / validation / test for the
    train / dev / test role."""
    m = re.fullmatch(r"hf:([^:@#\s]+)(?::([^@#\s]+))?(?:@([^#\s]+))?(?:#(\S+))?", source)
    if not m:
        raise ElectraError(f"--{role} {source}: expected {DATASET_SYNTAX}, e.g. hf:imdb@test")
    return DatasetSource(m.group(1), m.group(2), m.group(3) or DEFAULT_SPLITS[role], m.group(4))


def load_dataset(source: str, role: str, what: str | None = None) -> tuple[Any, DatasetSource]:
    """The `datasets` split named by `source` (`hf:...`, see `parse_dataset`), with its parsed name; one line when the
    hub cannot be reached or the dataset, config or split does not exist."""
    spec = parse_dataset(source, role)
    require(spec.name, what or f"--{role} dataset")
    import datasets

    try:
        return datasets.load_dataset(spec.name, spec.config, split=spec.split), spec
    except Exception as err:  # a missing dataset, config or split
        raise ElectraError(f"--{role} {source}: {type(err).__name__}: {err}".replace("\n", " ")) from None
