"""Token classification (chunking, NER, POS) finetuning, after google-research/electra (docs/tagging.md)."""

from electra.finetune.tagging.export import export_tagging_run
from electra.finetune.tagging.finetune import finetune_tagging

__all__ = ["export_tagging_run", "finetune_tagging"]
