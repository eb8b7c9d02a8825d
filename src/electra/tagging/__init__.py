"""Token classification (chunking, NER, POS tagging) finetuning, after google-research/electra finetune/tagging/.

    from electra.tagging import finetune_tagging, export_tagging_run

    finetune_tagging("runs/small", "runs/chunk", train="chunk/train.txt", dev="chunk/dev.txt", runs=3, save_model=True)
    export_tagging_run("runs/chunk/tagging/run_0", "models/chunk")

docs/tagging.md describes the file format, the recipe, the metrics and the files written.
"""

from electra.tagging.export import export_tagging_run
from electra.tagging.finetune import finetune_tagging

__all__ = ["export_tagging_run", "finetune_tagging"]
