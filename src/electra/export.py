"""`electra export`: a pretraining or finetuned run as `transformers` model directories, loaded back and compared
with ours (`--no-verify` skips it); an existing non-empty DIR is replaced only with `--force`. An electric run
exports its discriminator alone, with a note on its logits (`ELECTRIC_NOTE`)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from electra import init
from electra.errors import ElectraError
from electra.hf import hf_class, quiet_transformers, to_hf
from electra.io import write_dir, write_json
from electra.tokenizer import WordPiece

if TYPE_CHECKING:
    from electra.config import PretrainConfig

VERIFY_TOLERANCE = 1e-4  # max |ours - transformers| accepted by the self-check (fp32; typically ~1e-6)


def _probe_batch(vocab_size: int, max_positions: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Two random sequences, the second padded, with both token types: what the self-check runs."""
    g = torch.Generator().manual_seed(seed)
    L = min(16, max_positions)
    ids = torch.randint(vocab_size, (2, L), generator=g)
    mask = torch.ones_like(ids)
    mask[1, L // 2 :] = 0
    types = torch.zeros_like(ids)
    types[:, L // 4 :] = 1
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": types * mask}


def _hf_outputs(hf_model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    out = hf_model(**batch)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


@torch.no_grad()
def verify_export(directory: Path, ours: nn.Module, kind: str) -> float:
    """Load `directory` with transformers (no missing or unexpected keys allowed) and return the largest absolute
    difference between its outputs and `ours` on a padded probe batch (padded positions excluded)."""
    cls = hf_class(kind)
    with quiet_transformers():
        hf, info = cls.from_pretrained(str(directory), output_loading_info=True)
    bad = {k: [n for n in v if not n.endswith("position_ids")] for k, v in info.items() if k != "error_msgs"}
    if any(bad.values()) or info.get("error_msgs"):
        raise ElectraError(f"export {directory}: transformers reports {bad} {info.get('error_msgs') or ''}".strip())
    batch = _probe_batch(ours.config.vocab_size, ours.config.max_position_embeddings)
    mine = ours.eval()(**batch)
    theirs = _hf_outputs(hf.eval(), batch)
    real = batch["attention_mask"].bool()
    if mine.shape[:2] != real.shape:  # one output per sequence (a classifier): every row counts
        real = torch.ones(mine.shape[0], dtype=torch.bool)
    diff = (mine.float() - theirs.float()).abs()[real].max().item()
    if not diff <= VERIFY_TOLERANCE:
        raise ElectraError(f"export {directory}: transformers computes outputs that differ from ours by {diff:.3g}")
    return diff


def save_model_dir(
    module: nn.Module, directory: Path, tokenizer: WordPiece, verify: bool, kind: str, **config_extra
) -> float | None:
    with quiet_transformers():
        to_hf(module, **config_extra).save_pretrained(directory)
    tokenizer.save(directory)
    return verify_export(directory, module, kind) if verify else None


ELECTRIC_NOTE = (
    "Trained with Electric's objective (Clark et al., EMNLP 2020; `electra pretrain --objective electric`): "
    "ElectraForPreTraining's logits here are Electric's energies E(x)_t, not replaced-token logits. The probability "
    "that a token was sampled is sigmoid(E(x)_t + log q(x_t | context) + log(p / (1 - p))), with q the cloze "
    "generator (not exported) and p the mask rate; minus their sum over a sentence is Electric's unnormalised "
    "log-likelihood score (`electra score --method electric`). "
    "Finetuning uses the encoder, as with any ELECTRA discriminator."
)


def export_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    checkpoint: str = "latest",
    force: bool = False,
    verify: bool = True,
) -> dict[str, Any]:
    """Export a pretraining run's discriminator (or masked LM) and generator; returns what export.json records."""
    from electra.checkpoint import read_json, resolve_checkpoint

    model, cfg, tokenizer = _load_run(run_dir, checkpoint)
    ckpt_dir = resolve_checkpoint(run_dir, checkpoint)
    state = (
        read_json(ckpt_dir / "trainer_state.json", "trainer state")
        if (ckpt_dir / "trainer_state.json").is_file()
        else {}
    )
    if cfg.objective == "mlm":
        raise ElectraError(f"run {run_dir} was trained with objective {cfg.objective!r}: it has no discriminator")
    main = "discriminator" if hasattr(model, "discriminator") else "masked_lm"  # the full-size model the run trains
    record: dict[str, Any] = {
        "format": "electra-export",
        "source": str(Path(run_dir).resolve()),
        "checkpoint": str(checkpoint),
        "checkpoint_dir": ckpt_dir.name,
        "step": state.get("step"),
        "config": cfg.to_dict(),
        "tokenizer_fingerprint": tokenizer.fingerprint(),
        main: "ElectraForPreTraining" if main == "discriminator" else "ElectraForMaskedLM",
        "generator": "ElectraForMaskedLM",
    }
    if hasattr(model, "copy_predictions"):
        record["not_exported"] = "copy_predictions (all-tokens-mlm's copy head)"
    electric = cfg.objective == "electric"
    if electric:
        del record["generator"]
        record["not_exported"] = "generator (Electric's two-tower cloze model has no transformers class)"
        record["note"] = ELECTRIC_NOTE

    disc_model = model
    if cfg.remove_top_word_direction:  # the discriminator as the run delivers it (electra.loading.load_model)
        disc_model = copy.deepcopy(model)
        record["top_word_direction_removed"] = init.remove_top_word_direction(disc_model)

    def write(tmp: Path) -> None:
        diffs = {
            main: save_model_dir(
                getattr(disc_model, main), tmp / main, tokenizer, verify, main.replace("masked_lm", "generator")
            ),
        }
        if electric:
            (tmp / main / "README.md").write_text(f"# Electric discriminator\n\n{ELECTRIC_NOTE}\n")
        else:
            diffs["generator"] = save_model_dir(model.generator, tmp / "generator", tokenizer, verify, "generator")
        if verify:
            record["verified_max_abs_diff"] = diffs
        write_json(tmp / "export.json", record)

    write_dir(out, write, force, source=run_dir, source_name="the run being exported")
    return record


def _load_run(run_dir: str | os.PathLike, checkpoint: str | int) -> tuple[nn.Module, PretrainConfig, WordPiece]:
    from electra.checkpoint import load_run

    return load_run(run_dir, checkpoint)
