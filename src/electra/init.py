"""Word vectors from the pretraining data's co-occurrence counts: a starting point for the word table.

Positive pointwise mutual information (PPMI) of each pair of word pieces that occur within `window` positions of
each other in a training example, with the context counts raised to 0.75 (Levy, Goldberg & Dagan 2015, "Improving
distributional similarity with lessons learned from word embeddings", context distribution smoothing), factorised
by a truncated SVD into U sqrt(S) (their eigenvalue weighting 0.5). Counting a few million tokens and the SVD take
seconds on a CPU.

Not in the ELECTRA paper. At CPU-minute budgets a transformer trained from scratch learns little beyond word
frequency (docs/pretraining.md), while these counts give each word piece a vector that says which words it is used
like; `--word-init ppmi` starts pretraining from them (`init_word_vectors` below).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from electra import objective as obj
from electra.config import PretrainConfig
from electra.electric import Electric
from electra.model import ELECTRA, Embeddings

if TYPE_CHECKING:
    import scipy.sparse as sp

WINDOW = 5  # positions on each side
CONTEXT_SMOOTHING = 0.75
CHUNK_TOKENS = 1_000_000  # pairs are counted a chunk at a time to bound memory


def cooccurrence(examples: Iterable[np.ndarray], vocab_size: int, window: int = WINDOW) -> sp.csr_matrix:
    """Symmetric (V, V) counts of id pairs at distance 1..`window` within the same example."""
    import scipy.sparse as sp

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
    import scipy.sparse as sp

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


# ---------------------------------------------------------------------------------------------- a built model's start
# Data-dependent starts of a built `ELECTRA` (not in the paper): the `tiny` preset and the small-budget baseline
# recipes use them (docs/pretraining.md); the paper's model itself starts from `electra.model.init_weights`.


def build(cfg: PretrainConfig, special_ids: obj.SpecialIds) -> ELECTRA:
    """`ELECTRA(cfg, special_ids)`, with the `word_start` buffer that `word_init="ppmi"` runs keep in their
    checkpoints (not in exports): the table the run started from, so that `remove_top_word_direction` undoes what
    training moved and not the start's own top direction."""
    model = (Electric if cfg.objective == "electric" else ELECTRA)(cfg, special_ids)
    if cfg.word_init == "ppmi":
        model.register_buffer("word_start", torch.zeros(cfg.model.vocab_size, cfg.model.embedding_size))
    return model


@torch.no_grad()
def init_output_biases(model: ELECTRA, token_counts: Tensor) -> None:
    """Start the output layers at the base rates: the generator's bias (and a replace-mlm or all-tokens-mlm run's
    masked LM's) at log p(token) over the tokens that can be masked (add-one smoothed counts from the data), the
    discriminator's at log(r / (1 - r)), r the expected share of real tokens that get replaced (~ mask_prob less
    the positions drawn twice)."""
    counts = token_counts.double().clone()
    counts[list(model.special)] = 0  # never a target
    log_p = obj.unigram_log_probs(counts)
    for lm in (model.generator, getattr(model, "masked_lm", None)):
        if lm is not None:
            lm.generator_lm_head.bias.copy_(log_p.to(lm.generator_lm_head.bias))
    if model.cfg.objective == "electra":
        n = model.cfg.max_length
        k = min(model.cfg.max_predictions, round(model.cfg.mask_prob * n))
        r = k * (1 - (k - 1) / (2 * (n - 2))) / n  # distinct positions among k draws with replacement, per token
        model.discriminator.discriminator_predictions.dense_prediction.bias.fill_(math.log(r / (1 - r)))


@torch.no_grad()
def word_table(model: ELECTRA) -> tuple[nn.Parameter, Tensor]:
    """The word-embedding parameter of the encoder that finetuning uses (`ELECTRA.delivered`: the discriminator's;
    the masked-LM encoder's for `--objective mlm`, replace-mlm and all-tokens-mlm) and, in float64, the table it
    looks words up in: the parameter itself, or with gdes, where the parameter holds only a delta, base + delta."""
    embeddings = model.delivered().embeddings
    table = embeddings.word_embeddings.weight
    base = embeddings.base
    return table, table.double() if base is None else table.double() + base.word_embeddings.weight.double()


def freeze_word_tables(model: ELECTRA) -> None:
    """Take every word table (the shared one; both with `embedding_sharing="none"`; base and delta with gdes)
    out of training: no gradient, so the optimizer leaves them where they started."""
    for m in model.modules():
        if isinstance(m, Embeddings):
            m.word_embeddings.weight.requires_grad_(False)


@torch.no_grad()
def init_word_vectors(model: ELECTRA, vectors: Tensor, token_counts: Tensor) -> int:
    """Start every word table (the shared one; the generator's and the discriminator's own with
    `embedding_sharing="none"`; the generator's base with gdes, whose deltas stay zero) at `vectors` (V, E)
    for the ids that occur in the data, rescaled so that their entries have the initialiser's standard
    deviation; special tokens and unseen ids keep their random rows. Returns how many rows were set."""
    rows = (token_counts > 0).clone()
    rows[list(model.special)] = False
    vectors = vectors[rows].double()
    if not len(vectors) or not vectors.std() > 0:
        return 0
    scaled = vectors * (model.cfg.model.initializer_range / vectors.std())
    tables = {
        id(m.word_embeddings.weight): m.word_embeddings.weight for m in model.modules() if isinstance(m, Embeddings)
    }
    if model.cfg.objective != "mlm" and model.cfg.embedding_sharing == "gdes":  # (mlm: one model, nothing shared)
        tables.pop(id(model.delivered().embeddings.word_embeddings.weight))
    for table in tables.values():
        table[rows] = scaled.to(table.dtype)
    if hasattr(model, "word_start"):
        model.word_start.copy_(word_table(model)[1])
    return int(rows.sum())


@torch.no_grad()
def remove_top_word_direction(model: ELECTRA) -> float:
    """Undo what training wrote along one direction of the discriminator's word table W: with W0 the table's
    start (`word_start`: the PPMI start of `word_init="ppmi"`, or the imported table of an --init-from run with
    it; no such buffer counts as zero) and u the top right-singular direction of
    the movement W - W0, W <- W - ((W - W0) u) u^T, which from a random start (W0 = 0) projects W's own top
    direction out of every row. The generator's table changes too where it is shared; with gdes, W = base + delta
    and only the delta changes; for `--objective mlm` it is the masked-LM encoder's table. Returns the share of
    ||W||^2 removed. After a short `tiny` run u is the word-frequency direction pretraining wrote into the table,
    which costs more in finetuning than it gives (docs/research/2026-12-01-what-tiny-learns-word-frequency.md); cf.
    Mu & Viswanath (2018), "All-but-the-top". From a PPMI start, W's own top direction would be the start's
    first component instead. Applied to a run's encoder when it is loaded for finetuning, probing or export if
    the run's config has `remove_top_word_direction` (`tiny` before it froze its table); never to a checkpoint."""
    table, used = word_table(model)
    start = getattr(model, "word_start", None)
    moved = used if start is None else used - start.double()
    u = torch.linalg.svd(moved, full_matrices=False).Vh[0]
    along = moved @ u
    table.sub_(torch.outer(along, u).to(table.dtype))
    return float(along.pow(2).sum() / used.pow(2).sum())
