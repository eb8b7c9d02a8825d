"""Pretraining data: corpus readers, the official ExampleBuilder, the on-disk format and the training loader.

    prepare_corpus(sources, tokenizer, max_length, out_dir, workers=1, seed=0, ...) -> Path
    read_examples(path) -> iterator of (token_ids, segment_a_length)
    PretrainLoader(data_dir, global_batch_size, seed=0, rank=0, world_size=1)
    load_dataset_meta(data_dir) -> dict

See docs/data.md.
"""

from electra.data.loader import PretrainLoader
from electra.data.prepare import prepare_corpus
from electra.data.store import load_dataset_meta, read_examples

__all__ = ["PretrainLoader", "load_dataset_meta", "prepare_corpus", "read_examples"]
