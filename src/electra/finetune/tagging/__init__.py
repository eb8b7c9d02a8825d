"""Token classification (chunking, NER, POS tagging) finetuning, after google-research/electra finetune/tagging/.

    from electra.finetune.tagging import finetune_tagging, export_tagging_run

    finetune_tagging("runs/small", "runs/chunk", train="chunk/train.txt", dev="chunk/dev.txt", runs=3, save_model=True)
    export_tagging_run("runs/chunk/tagging/run_0", "models/chunk")

docs/tagging.md describes the file format, the recipe, the metrics and the files written.
"""

from electra.finetune.tagging.export import export_tagging_run
from electra.finetune.tagging.finetune import finetune_tagging

__all__ = ["export_tagging_run", "finetune_tagging"]
