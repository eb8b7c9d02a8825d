"""SQuAD 1.1 / 2.0 question answering, as google-research/electra finetune/qa does it (docs/qa.md).

from electra.finetune.qa import finetune_squad, export_qa_run
finetune_squad("runs/small", "runs/squad", train="train-v2.0.json", dev="dev-v2.0.json", version="2.0")
export_qa_run("runs/squad/squad20/run_0", "exports/squad20")   # needs save_model=True
"""

from electra.finetune.qa.export import export_qa_run
from electra.finetune.qa.finetune import finetune_squad

__all__ = ["export_qa_run", "finetune_squad"]
