"""SQuAD 1.1 / 2.0 question answering, as google-research/electra finetune/qa does it (docs/qa.md)."""

from electra.finetune.qa.export import export_qa_run
from electra.finetune.qa.finetune import finetune_squad

__all__ = ["export_qa_run", "finetune_squad"]
