"""Text and a tiny vocabulary written by the data tests themselves."""

import random
import string
from pathlib import Path

WORDS = (
    "the", "a", "of", "and", "to", "in", "is", "was", "he", "she", "it", "that", "with", "for", "as", "his",
    "her", "on", "be", "at", "by", "had", "not", "are", "but", "from", "or", "have", "an", "they", "which",
    "one", "you", "were", "all", "we", "when", "there", "can", "been", "has", "more", "if", "no", "out", "so",
    "said", "what", "up", "its", "about", "into", "than", "them", "only", "other", "new", "some", "could",
    "time", "these", "two", "may", "then", "do", "first", "any", "my", "now", "such", "like", "our", "over",
    "man", "me", "even", "most", "made", "after", "also", "did", "many", "before", "must", "through", "back",
    "years", "where", "much", "your", "way", "well", "down", "should", "because", "each", "just", "those",
    "people", "how", "too", "little", "state", "good", "very", "make", "world", "still", "own", "see", "men",
    "work", "long", "get", "here", "between", "both", "life", "being", "under", "never", "day", "same",
    "another", "know", "while", "last", "might", "us", "great", "old", "year", "off", "come", "since",
    "against", "go", "came", "right", "used", "take", "three",
)


def write_vocab(path: Path, specials=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")) -> Path:
    tokens = [*specials, *WORDS, *string.ascii_lowercase, *(f"##{c}" for c in string.ascii_lowercase), ".", ","]
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def random_sentence(rng: random.Random, max_words=25) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, max_words))]
    return " ".join(words).capitalize() + "."


def random_documents(seed: int, n_docs: int, max_lines=30, max_words=25) -> list[list[str]]:
    rng = random.Random(seed)
    return [[random_sentence(rng, max_words) for _ in range(rng.randint(1, max_lines))] for _ in range(n_docs)]


def write_corpus(path: Path, docs: list[list[str]]) -> Path:
    """The official format: one sentence per line, an empty line between documents."""
    path.write_text("\n\n".join("\n".join(doc) for doc in docs) + "\n", encoding="utf-8")
    return path
