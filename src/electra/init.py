"""Word vectors from the pretraining data's co-occurrence counts: a starting point for the word table.

Positive pointwise mutual information (PPMI) of each pair of word pieces that occur within `window` positions of
each other in a training example, with the context counts raised to 0.75 (Levy, Goldberg & Dagan 2015, "Improving
distributional similarity with lessons learned from word embeddings", context distribution smoothing), factorised
by a truncated SVD into U sqrt(S) (their eigenvalue weighting 0.5). Counting a few million tokens and the SVD take
seconds on a CPU.

Not in the ELECTRA paper. At CPU-minute budgets a transformer trained from scratch learns little beyond word
frequency (docs/pretraining.md), while these counts give each word piece a vector that says which words it is used
like; `--word-init ppmi` starts pretraining from them (`ELECTRA.init_word_vectors`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

WINDOW = 5  # positions on each side
CONTEXT_SMOOTHING = 0.75
CHUNK_TOKENS = 1_000_000  # pairs are counted a chunk at a time to bound memory


def cooccurrence(examples: Iterable[np.ndarray], vocab_size: int, window: int = WINDOW) -> sp.csr_matrix:
    """Symmetric (V, V) counts of id pairs at distance 1..`window` within the same example."""
    total = sp.csr_matrix((vocab_size, vocab_size), dtype=np.float64)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    pending = 0

    def flush() -> sp.csr_matrix:
        r, c = np.concatenate(rows), np.concatenate(cols)
        counts = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(vocab_size, vocab_size)).tocsr()
        rows.clear()
        cols.clear()
        return counts + counts.T

    for ids in examples:
        ids = np.asarray(ids, dtype=np.int64)
        for d in range(1, min(window, len(ids) - 1) + 1):
            rows.append(ids[:-d])
            cols.append(ids[d:])
        pending += len(ids)
        if pending >= CHUNK_TOKENS and rows:
            total = total + flush()
            pending = 0
    if rows:
        total = total + flush()
    return total.tocsr()


def ppmi(counts: sp.csr_matrix, smoothing: float = CONTEXT_SMOOTHING) -> sp.csr_matrix:
    """max(0, log p(w, c) / (p(w) p_s(c))), p_s the context distribution raised to `smoothing`; zeros stay zero."""
    coo = counts.tocoo()
    total = coo.data.sum()
    if total == 0:
        return sp.csr_matrix(counts.shape, dtype=np.float64)
    p_word = np.asarray(counts.sum(axis=1)).ravel() / total
    context = np.asarray(counts.sum(axis=0)).ravel() ** smoothing
    p_context = context / context.sum()
    pmi = np.log(coo.data / total / (p_word[coo.row] * p_context[coo.col]))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)


def ppmi_vectors(examples: Iterable[np.ndarray], vocab_size: int, dim: int, window: int = WINDOW) -> np.ndarray:
    """(V, dim) float32 word vectors U sqrt(S) of the PPMI matrix of `examples`' co-occurrences; deterministic
    (a fixed random state for the randomised SVD and each column's sign fixed by its largest entry). Rows of ids
    with no positive association (e.g. never seen) are zero."""
    from sklearn.utils.extmath import randomized_svd

    matrix = ppmi(cooccurrence(examples, vocab_size, window))
    k = min(dim, vocab_size - 1)
    if matrix.nnz == 0:
        return np.zeros((vocab_size, dim), np.float32)
    u, s, _ = randomized_svd(matrix, n_components=k, n_iter=7, random_state=0)
    vectors = u * np.sqrt(s)
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(k)])
    vectors *= np.where(signs == 0, 1.0, signs)
    vectors[np.diff(matrix.indptr) == 0] = 0  # no positive association: exactly zero, not SVD round-off
    out = np.zeros((vocab_size, dim), np.float32)
    out[:, :k] = vectors
    return out
