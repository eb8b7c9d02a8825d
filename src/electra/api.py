"""Every workflow of the `electra` command as a Python function; the command only parses its arguments and calls
these.

    from electra.api import export, finetune, finetune_own, finetune_squad, finetune_tagging, prepare, pretrain, report

    data = prepare(["builtin"], "vocab.txt", 128, "runs/data")             # electra prepare
    pretrain("runs/tiny", preset="tiny", data=data, max_steps=200)          # electra pretrain
    export("runs/tiny", "runs/tiny-hf")                                     # electra export
    finetune("runs/tiny", "runs/glue", tasks="sst2", glue_dir="glue")       # electra finetune
    finetune_own("runs/tiny", "runs/mine", train="a.csv", dev="b.csv")      # electra finetune --train --dev
    finetune_tagging("runs/tiny", "runs/chunk", train="a.txt", dev="b.txt")  # ... --kind tagging
    finetune_squad("runs/tiny", "runs/squad", train="a.json", dev="b.json")  # ... --kind qa
    report(["runs/tiny", "runs/glue"], "runs/report")                       # electra report
    score("runs/tiny-hf/generator", "sentences.txt", "scores.tsv", method="pll")  # electra score

Each raises `electra.errors.ElectraError` (one line: what is wrong, which file or field, what to do) for bad
input; the command prints that line and exits with status 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from electra.data.prepare import prepare_corpus as prepare
from electra.errors import ElectraError
from electra.finetune.glue import finetune, finetune_own
from electra.finetune.qa import export_qa_run, finetune_squad
from electra.finetune.tagging import export_tagging_run, finetune_tagging
from electra.probe import live_probe
from electra.report import write_report as report
from electra.score import score_file as score
from electra.train.pretrain import pretrain as pretrain_run

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from electra.train.fields import PretrainSettings

__all__ = [
    "export",
    "finetune",
    "finetune_own",
    "finetune_squad",
    "finetune_tagging",
    "prepare",
    "pretrain",
    "report",
    "score",
]


def export(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    checkpoint: str = "latest",
    force: bool = False,
    verify: bool = True,
    tokenizer: str | None = None,
) -> dict[str, Any]:
    """Export a pretraining run (discriminator and generator as `transformers` directories) or a finetuning run
    saved with `save_model` (GLUE or your own data: encoder + head, or `ElectraForSequenceClassification` for the
    transformers head; tagging: `ElectraForTokenClassification`; SQuAD: `ElectraForQuestionAnswering` or encoder +
    official head); what `electra export` does. Returns what the
    export records."""
    from electra.export import export_run
    from electra.finetune.export import export_glue_run, finetuned_task, is_glue_run
    from electra.loading import is_run_dir

    source = Path(source)
    if not source.exists():
        raise ElectraError(f"{source} does not exist")
    if is_run_dir(source) or (source / "model.safetensors").is_file() and (source / "trainer_state.json").is_file():
        return export_run(source, out, checkpoint, force, verify)
    if is_glue_run(source):
        kind = finetuned_task(source)
        if kind == "tagging":
            return export_tagging_run(source, out, force)
        if kind in ("squad11", "squad20"):
            return export_qa_run(source, out, force)
        return export_glue_run(source, out, force, verify, tokenizer)
    if (source / "results.json").is_file() or any(source.glob("*/run_*/metrics.json")):
        raise ElectraError(
            f"{source} is a finetuning sweep; export one of its runs, {source}/<task>/run_<seed> "
            "(finetuned with --save-model)"
        )
    raise ElectraError(
        f"{source} is neither a pretraining run directory (config.json + checkpoints/) nor a GLUE run directory "
        "(SWEEP/<task>/run_<seed> with config.json and metrics.json)"
    )


def pretrain(out: str | os.PathLike, preset: str | None = None, **settings: Unpack[PretrainSettings]) -> dict[str, Any]:
    """Pretrain (or with resume=True continue) the run in `out`; what `electra pretrain` does, the live probe
    (`probe=`, default the built-in set) included.

    `preset` names the model and recipe (optional on resume); `settings` are run options (the `RunOptions`
    fields: data or corpus + vocab, resume, force, eval_every, probe, device, ...) and config fields that override
    the preset's (max_steps, learning_rate, hidden_size, ...). Returns the last logged training record.

        from electra.api import pretrain
        pretrain("runs/tiny", preset="tiny", corpus=["builtin"], vocab="vocab.txt", max_steps=200)
    """
    return pretrain_run(out, preset, evaluators=[live_probe], **settings)
